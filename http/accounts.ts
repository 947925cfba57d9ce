/**
 * /v1/accounts: tenants. Admin token only. Everything else (credentials, domains, messages)
 * belongs to an account; the admin token picks one with `X-Postern-Account` (http/auth.ts).
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  type Account,
  createAccount,
  listAccounts,
  setAccountTestMode,
} from "../core/store/accounts.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { label } from "./fields.ts";
import { parseJson } from "./validate.ts";

const testMode = z.boolean().describe(
  "Default test mode for every credential of the account (sandbox: nothing leaves the relay)",
);

export const CreateAccount = z.object({ name: label, test_mode: testMode.optional() }).strict();

export const UpdateAccount = z.object({ test_mode: testMode }).strict();

function view(a: Account) {
  return {
    id: a.id,
    name: a.name,
    test_mode: a.testMode === true,
    created_at: new Date(a.createdAt).toISOString(),
  };
}

export function accountsApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());

  app.post("/", async (c) => {
    const input = await parseJson(c, CreateAccount);
    const account = await createAccount(kv, {
      name: input.name,
      ...(input.test_mode ? { testMode: true } : {}),
    });
    if (!account) throw errors.conflict(`An account named "${input.name}" exists`);
    return c.json(view(account), 201);
  });

  app.get("/", async (c) => c.json({ data: (await listAccounts(kv)).map(view) }));

  app.patch("/:id", async (c) => {
    const input = await parseJson(c, UpdateAccount);
    const account = await setAccountTestMode(kv, c.req.param("id"), input.test_mode);
    if (!account) throw errors.notFound("account");
    return c.json(view(account));
  });

  return app;
}
