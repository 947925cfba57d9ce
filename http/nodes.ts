/**
 * GET /v1/nodes (admin): the nodes sharing the store, from their heartbeats, with the roles each
 * runs and the destination sites whose leases it holds now. Edge isolates of the HTTP role
 * (edge.ts) write no heartbeat: they come and go with requests.
 */
import { Hono } from "hono";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { listLiveNodes } from "../core/store/nodes.ts";
import { listSiteLeases } from "../core/store/leases.ts";
import { HEARTBEAT_TTL_MS } from "../core/heartbeat.ts";

export function nodesApi(deps: { kv: Deno.Kv; now?: () => number }) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());
  app.get("/", async (c) => {
    const now = (deps.now ?? Date.now)();
    const [nodes, leases] = await Promise.all([
      listLiveNodes(deps.kv, now, HEARTBEAT_TTL_MS),
      listSiteLeases(deps.kv, now),
    ]);
    const sitesOf = new Map<string, { site: string; lease_until: string }[]>();
    for (const { site, lease } of leases) {
      const list = sitesOf.get(lease.owner) ?? [];
      list.push({ site, lease_until: new Date(lease.until).toISOString() });
      sitesOf.set(lease.owner, list);
    }
    return c.json({
      data: nodes.map((n) => ({
        id: n.id,
        hostname: n.hostname,
        roles: n.roles,
        started_at: new Date(n.startedAt).toISOString(),
        last_heartbeat: new Date(n.lastBeat).toISOString(),
        sites: sitesOf.get(n.id) ?? [],
      })),
    });
  });
  return app;
}
