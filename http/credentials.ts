/** /v1/credentials: create (secret shown once), list (no secrets), revoke. */
import { Hono } from "hono";
import { z } from "zod";
import {
  createCredential,
  getCredential,
  listCredentials,
  publicView,
  revokeCredential,
} from "../core/store/credentials.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { parseJson } from "./validate.ts";

const CreateCredential = z.object({
  name: z.string().trim().min(1).max(100).regex(/^[\w .@-]+$/, "letters, digits, space, . _ @ -"),
}).strict();

export function credentialsApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());

  app.post("/", async (c) => {
    const input = await parseJson(c, CreateCredential);
    const { credential, password } = await createCredential(kv, {
      account: c.get("principal").account,
      name: input.name,
    });
    return c.json({ ...publicView(credential), password }, 201);
  });

  app.get("/", async (c) => {
    const list = await listCredentials(kv, c.get("principal").account);
    return c.json({ data: list.map(publicView) });
  });

  app.get("/:id", async (c) => {
    const credential = await getCredential(kv, c.req.param("id"));
    if (!credential || credential.account !== c.get("principal").account) {
      throw errors.notFound("credential");
    }
    return c.json(publicView(credential));
  });

  app.delete("/:id", async (c) => {
    const existing = await getCredential(kv, c.req.param("id"));
    if (!existing || existing.account !== c.get("principal").account) {
      throw errors.notFound("credential");
    }
    const revoked = await revokeCredential(kv, existing.id);
    return c.json(publicView(revoked!));
  });

  return app;
}
