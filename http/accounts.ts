/**
 * /v1/accounts: tenants. Admin token only. Everything else (credentials, domains, messages)
 * belongs to an account; the admin token picks one with `X-Postern-Account` (http/auth.ts).
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  type Account,
  type AccountSettings,
  createAccount,
  getAccount,
  listAccounts,
  updateAccount,
} from "../core/store/accounts.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { label, poolList } from "./fields.ts";
import { parseJson } from "./validate.ts";

const settingFields = {
  require_verified_sender: z.boolean(),
  pools: poolList,
};

export const CreateAccount = z.object({
  name: label,
  require_verified_sender: settingFields.require_verified_sender.optional(),
  pools: settingFields.pools.optional(),
}).strict();

export const UpdateAccount = z.object({
  require_verified_sender: settingFields.require_verified_sender.optional(),
  pools: settingFields.pools.optional(),
}).strict().refine((v) => Object.keys(v).length > 0, "name at least one setting to change");

function settingsOf(input: z.output<typeof UpdateAccount>): Partial<AccountSettings> {
  return {
    ...(input.require_verified_sender !== undefined
      ? { requireVerifiedSender: input.require_verified_sender }
      : {}),
    ...(input.pools !== undefined ? { pools: [...new Set(input.pools)] } : {}),
  };
}

function view(a: Account) {
  return {
    id: a.id,
    name: a.name,
    require_verified_sender: a.requireVerifiedSender,
    pools: a.pools,
    created_at: new Date(a.createdAt).toISOString(),
  };
}

export function accountsApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());

  app.post("/", async (c) => {
    const { name, ...settings } = await parseJson(c, CreateAccount);
    const account = await createAccount(kv, { name, settings: settingsOf(settings) });
    if (!account) throw errors.conflict(`An account named "${name}" exists`);
    return c.json(view(account), 201);
  });

  app.get("/", async (c) => c.json({ data: (await listAccounts(kv)).map(view) }));

  app.get("/:id", async (c) => {
    const account = await getAccount(kv, c.req.param("id").slice(0, 64));
    if (!account) throw errors.notFound("account");
    return c.json(view(account));
  });

  app.patch("/:id", async (c) => {
    const id = c.req.param("id").slice(0, 64);
    if (!(await getAccount(kv, id))) throw errors.notFound("account");
    const input = await parseJson(c, UpdateAccount);
    const updated = await updateAccount(kv, id, settingsOf(input));
    if (!updated) throw errors.notFound("account");
    return c.json(view(updated));
  });

  return app;
}
