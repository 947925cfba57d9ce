/**
 * /v1/accounts: tenants. Admin token only. Everything else (credentials, domains, messages)
 * belongs to an account; the admin token picks one with `X-Postern-Account` (http/auth.ts).
 * PATCH sets the account's content policy: what rspamd's score does to its mail (README
 * "Content filtering").
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  type Account,
  contentPolicyOf,
  createAccount,
  listAccounts,
  setAccountTestMode,
  updateContentPolicy,
} from "../core/store/accounts.ts";
import type { ContentPolicy } from "../core/policy/content_policy.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { label } from "./fields.ts";
import { parseJson } from "./validate.ts";

const testMode = z.boolean().describe(
  "Default test mode for every credential of the account (sandbox: nothing leaves the relay)",
);

export const CreateAccount = z.object({ name: label, test_mode: testMode.optional() }).strict();

const score = z.number().min(-1000).max(1000);

export const UpdateAccount = z.object({
  test_mode: testMode.optional(),
  content_policy: z.object({
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
  }).strict().optional(),
}).strict().refine(
  (v) => v.test_mode !== undefined || v.content_policy !== undefined,
  "name test_mode or content_policy",
);

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
    test_mode: a.testMode === true,
    created_at: new Date(a.createdAt).toISOString(),
    content_policy: policyView(contentPolicyOf(a)),
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
    const id = c.req.param("id");
    let updated: Account | null = null;
    if (id.length <= 64 && input.test_mode !== undefined) {
      updated = await setAccountTestMode(kv, id, input.test_mode);
      if (!updated) throw errors.notFound("account");
    }
    const p = input.content_policy;
    if (id.length <= 64 && p !== undefined) {
      const patch: Partial<ContentPolicy> = {};
      if (p.reject_score !== undefined) patch.rejectScore = p.reject_score;
      if (p.hold_score !== undefined) patch.holdScore = p.hold_score;
      if (p.add_headers !== undefined) patch.addHeaders = p.add_headers;
      if (p.on_error !== undefined) patch.onError = p.on_error;
      updated = await updateContentPolicy(kv, id, patch);
    }
    if (!updated) throw errors.notFound("account");
    return c.json(view(updated));
  });

  return app;
}
