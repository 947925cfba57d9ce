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
  require_verified_sender: z.boolean().describe(
    "Senders (MAIL FROM, From, Sender) must be the account's verified domains",
  ),
  pools: poolList.describe("IP pools every credential of the account may choose"),
  test_mode: z.boolean().describe(
    "Default test mode for every credential of the account (sandbox: nothing leaves the relay)",
  ),
};

export const CreateAccount = z.object({
  name: label,
  require_verified_sender: settingFields.require_verified_sender.optional(),
  pools: settingFields.pools.optional(),
  test_mode: settingFields.test_mode.optional(),
}).strict();

export const UpdateAccount = z.object({
  require_verified_sender: settingFields.require_verified_sender.optional(),
  pools: settingFields.pools.optional(),
  test_mode: settingFields.test_mode.optional(),
}).strict().refine((v) => Object.keys(v).length > 0, "name at least one setting to change");

function settingsOf(
  input: z.output<typeof UpdateAccount>,
): Partial<AccountSettings> & { testMode?: boolean } {
  return {
    ...(input.require_verified_sender !== undefined
      ? { requireVerifiedSender: input.require_verified_sender }
      : {}),
    ...(input.pools !== undefined ? { pools: [...new Set(input.pools)] } : {}),
    ...(input.test_mode !== undefined ? { testMode: input.test_mode } : {}),
  };
}

function view(a: Account) {
  return {
    id: a.id,
    name: a.name,
    require_verified_sender: a.requireVerifiedSender,
    pools: a.pools,
    test_mode: a.testMode === true,
    created_at: new Date(a.createdAt).toISOString(),
  };
}

export function accountsApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());

  app.post("/", async (c) => {
    const { name, test_mode, ...settings } = await parseJson(c, CreateAccount);
    const account = await createAccount(kv, {
      name,
      settings: settingsOf(settings),
      ...(test_mode ? { testMode: true } : {}),
    });
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
    const input = await parseJson(c, UpdateAccount);
    const updated = await updateAccount(kv, c.req.param("id").slice(0, 64), settingsOf(input));
    if (!updated) throw errors.notFound("account");
    return c.json(view(updated));
  });

  return app;
}
