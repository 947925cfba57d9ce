/**
 * /v1/accounts: tenants. Admin token only. Everything else (credentials, domains, messages)
 * belongs to an account; the admin token picks one with `X-Postern-Account` (http/auth.ts).
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  type Account,
  type AccountSettings,
  contentPolicyOf,
  createAccount,
  getAccount,
  listAccounts,
  updateAccount,
} from "../core/store/accounts.ts";
import type { ContentPolicy } from "../core/policy/content_policy.ts";
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

const score = z.number().min(-1000).max(1000);

/** What rspamd's score does to the account's mail (README "Content filtering"). */
const ContentPolicyInput = z.object({
  reject_score: score.nullable().optional().describe(
    "at or above: refused (SMTP 550 5.7.1, HTTP 422); null = rspamd's own reject threshold",
  ),
  hold_score: score.nullable().optional().describe(
    "at or above (below reject_score): accepted but held; null = never held",
  ),
  add_headers: z.boolean().optional().describe(
    "add rspamd's X-Spam-* headers to mail that passes",
  ),
  on_error: z.enum(["accept", "tempfail"]).optional().describe(
    "rspamd down or slow: accept (logged, counted) or tempfail (451 4.7.1)",
  ),
}).strict();

export const UpdateAccount = z.object({
  require_verified_sender: settingFields.require_verified_sender.optional(),
  pools: settingFields.pools.optional(),
  test_mode: settingFields.test_mode.optional(),
  content_policy: ContentPolicyInput.optional(),
}).strict().refine((v) => Object.keys(v).length > 0, "name at least one setting to change");

function settingsOf(
  input: z.output<typeof UpdateAccount>,
): Partial<AccountSettings> & { testMode?: boolean; contentPolicy?: Partial<ContentPolicy> } {
  const p = input.content_policy;
  return {
    ...(p !== undefined ? { contentPolicy: contentPolicyPatch(p) } : {}),
    ...(input.require_verified_sender !== undefined
      ? { requireVerifiedSender: input.require_verified_sender }
      : {}),
    ...(input.pools !== undefined ? { pools: [...new Set(input.pools)] } : {}),
    ...(input.test_mode !== undefined ? { testMode: input.test_mode } : {}),
  };
}

function contentPolicyPatch(p: z.output<typeof ContentPolicyInput>): Partial<ContentPolicy> {
  const patch: Partial<ContentPolicy> = {};
  if (p.reject_score !== undefined) patch.rejectScore = p.reject_score;
  if (p.hold_score !== undefined) patch.holdScore = p.hold_score;
  if (p.add_headers !== undefined) patch.addHeaders = p.add_headers;
  if (p.on_error !== undefined) patch.onError = p.on_error;
  return patch;
}

function policyView(p: ContentPolicy) {
  return {
    reject_score: p.rejectScore,
    hold_score: p.holdScore,
    add_headers: p.addHeaders,
    on_error: p.onError,
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
    content_policy: policyView(contentPolicyOf(a)),
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
