/**
 * GET /metrics in Prometheus text format. Open to the admin token, or without a token to clients
 * in POSTERN_TRUSTED_NETWORKS (a Prometheus server on the private network). Nothing secret is
 * in it: counters and gauges with bounded labels only.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { metrics, renderMetrics } from "../core/metrics.ts";
import { queueDepth } from "../core/store/stats.ts";
import { safeEqual, sha256 } from "../core/auth/secrets.ts";
import { errors } from "./errors.ts";

export interface MetricsDeps {
  kv: Deno.Kv;
  adminTokenHash: string;
  trusted(address: string): boolean;
}

function remoteAddress(c: Context): string | null {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? null;
}

export function metricsApi(deps: MetricsDeps) {
  const app = new Hono();
  app.get("/", async (c) => {
    const m = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
    const admin = m !== null && safeEqual(sha256(m[1]!), deps.adminTokenHash);
    const address = remoteAddress(c);
    if (!admin && !(address !== null && deps.trusted(address))) {
      metrics.authFailures.inc({ protocol: "http" });
      throw errors.unauthorized();
    }
    metrics.queueDepth.set(await queueDepth(deps.kv, Date.now()));
    return c.body(renderMetrics(), 200, { "content-type": "text/plain; version=0.0.4" });
  });
  return app;
}
