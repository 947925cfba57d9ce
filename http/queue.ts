/**
 * /v1/queue: the delivery queue by destination site (admin only; sites are shared by accounts).
 * GET lists sites with depth, oldest age, state and the limits in force; POST /:site/retry,
 * /suspend and /resume steer one; DELETE /:site purges it (`?dsn=false` drops without DSNs).
 * `:site` is a site key (URL-encoded) or any recipient domain of the site.
 */
import { Hono } from "hono";
import type { QueueControl } from "../core/queue_control.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";

export function queueApi(queue: () => QueueControl | null) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());

  function control(): QueueControl {
    const q = queue();
    if (!q) throw errors.unavailable("This node runs no delivery worker");
    return q;
  }

  async function site(q: QueueControl, param: string): Promise<string> {
    const key = await q.resolve(param);
    if (!key) throw errors.notFound("site");
    return key;
  }

  app.get("/", async (c) => c.json({ data: await control().sites() }));

  app.post("/:site/retry", async (c) => {
    const q = control();
    const key = await site(q, c.req.param("site"));
    await q.retry(key);
    return c.json({ site: key, retry: "now" });
  });

  app.post("/:site/suspend", async (c) => {
    const q = control();
    const key = await site(q, c.req.param("site"));
    await q.suspend(key);
    return c.json({ site: key, state: "suspended" });
  });

  app.post("/:site/resume", async (c) => {
    const q = control();
    const key = await site(q, c.req.param("site"));
    await q.resume(key);
    return c.json({ site: key, state: "active" });
  });

  app.delete("/:site", async (c) => {
    const q = control();
    const key = await site(q, c.req.param("site"));
    const dsnParam = c.req.query("dsn");
    if (dsnParam !== undefined && dsnParam !== "true" && dsnParam !== "false") {
      throw errors.invalid("dsn must be true or false");
    }
    const removed = await q.purge(key, { dsn: dsnParam !== "false" });
    return c.json({ site: key, removed });
  });

  return app;
}
