/** GET /v1/stats: event counts (per recipient) grouped by hour, recipient domain or tag. */
import { Hono } from "hono";
import { z } from "zod";
import { readStats } from "../core/store/stats.ts";
import type { AppEnv } from "./auth.ts";
import { errors } from "./errors.ts";
import { parseQuery } from "./validate.ts";
import { isoTime } from "./query_fields.ts";

const DAY_MS = 86_400_000;
const MAX_WINDOW_MS = 93 * DAY_MS;

export const StatsQuery = z.object({
  by: z.enum(["hour", "domain", "tag"]).default("hour"),
  since: isoTime.optional().describe("default: 24 hours ago"),
  until: isoTime.optional().describe("default: now"),
}).strict();

export function statsApi(deps: { kv: Deno.Kv; now?: () => number }) {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const q = parseQuery(c, StatsQuery);
    const until = q.until ?? (deps.now ?? Date.now)();
    const since = q.since ?? until - DAY_MS;
    if (since >= until || until - since > MAX_WINDOW_MS) {
      throw errors.invalid("since must be before until, at most 93 days apart");
    }
    const rows = await readStats(deps.kv, c.get("principal").account, q.by, since, until);
    return c.json({
      by: q.by,
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      data: rows.map((r) => ({
        [q.by]: r.key,
        counts: r.counts,
        delivery_latency_ms: r.latency,
        // Content scans are counted per message, not per domain or tag: by hour only.
        ...(q.by === "hour" ? { scan_latency_ms: r.scanLatency } : {}),
      })),
    });
  });

  return app;
}
