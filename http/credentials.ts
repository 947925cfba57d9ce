/**
 * /v1/credentials: SMTP passwords that double as HTTP API keys, with their scopes.
 *
 * The admin token manages them (create, change, rotate, revoke); a credential key may only list
 * and read its own account's credentials (never a secret: those are shown once, when issued).
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  addSecret,
  createCredential,
  type Credential,
  type CredentialScopes,
  getCredential,
  listCredentials,
  removeSecret,
  revokeCredential,
  updateCredential,
} from "../core/store/credentials.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { cidr, domainName, label, poolList, poolName, rate } from "./fields.ts";
import { parseJson } from "./validate.ts";
import { SUBMISSION_FAULTS } from "../core/policy/sandbox.ts";

const scopeFields = {
  domains: z.array(domainName).max(100),
  allowed_ips: z.array(cidr).max(100),
  rate_limit: rate.nullable(),
  daily_quota: z.number().int().positive().max(1_000_000_000).nullable(),
  pool: poolName.nullable(),
  pools: poolList,
  dsn: z.boolean(),
  test_mode: z.boolean(),
  sandbox_submission: z.enum(SUBMISSION_FAULTS).nullable(),
};

export const CreateCredential = z.object({
  name: label,
  domains: scopeFields.domains.optional(),
  allowed_ips: scopeFields.allowed_ips.optional(),
  rate_limit: scopeFields.rate_limit.optional(),
  daily_quota: scopeFields.daily_quota.optional(),
  pool: scopeFields.pool.optional(),
  pools: scopeFields.pools.optional(),
  dsn: scopeFields.dsn.optional(),
  test_mode: scopeFields.test_mode.optional().describe(
    "Mail goes through everything but is delivered only to the sandbox's simulated MX",
  ),
  sandbox_submission: scopeFields.sandbox_submission.optional().describe(
    "A submission fault every transaction plays (GET /v1/sandbox); null = none",
  ),
}).strict();

export const UpdateCredential = CreateCredential.partial().extend({
  suspended: z.literal(false).optional().describe(
    "false lifts a suspension by the abuse brake (POSTERN_ABUSE_BRAKE_LIMIT)",
  ),
}).strict().refine(
  (v) => Object.keys(v).length > 0,
  "name at least one field to change",
);

type ScopeInput = {
  [K in keyof z.output<typeof CreateCredential>]?: z.output<typeof CreateCredential>[K] | undefined;
};

/** API field names → stored scopes, keeping only the fields that were given. */
function scopesOf(input: ScopeInput): Partial<CredentialScopes> & { name?: string } {
  const out: Partial<CredentialScopes> & { name?: string } = {};
  if (input.name !== undefined) out.name = input.name;
  if (input.domains !== undefined) out.domains = [...new Set(input.domains)];
  if (input.allowed_ips !== undefined) out.allowedIps = [...new Set(input.allowed_ips)];
  if (input.rate_limit !== undefined) out.rateLimit = input.rate_limit;
  if (input.daily_quota !== undefined) out.dailyQuota = input.daily_quota;
  if (input.pool !== undefined) out.pool = input.pool;
  if (input.pools !== undefined) out.pools = [...new Set(input.pools)];
  if (input.dsn !== undefined) out.dsn = input.dsn;
  if (input.test_mode !== undefined) out.testMode = input.test_mode;
  if (input.sandbox_submission !== undefined) out.sandboxSubmission = input.sandbox_submission;
  return out;
}

const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

/** The public shape: scopes and metadata, never a secret or its hash. */
function view(c: Credential) {
  return {
    id: c.id,
    account: c.account,
    name: c.name,
    username: c.username,
    domains: c.domains,
    allowed_ips: c.allowedIps,
    rate_limit: c.rateLimit,
    daily_quota: c.dailyQuota,
    pool: c.pool,
    pools: c.pools,
    dsn: c.dsn,
    test_mode: c.testMode,
    sandbox_submission: c.sandboxSubmission,
    secrets: c.secrets.map((s) => ({ id: s.id, created_at: iso(s.createdAt) })),
    created_at: iso(c.createdAt),
    revoked_at: iso(c.revokedAt),
    suspended_at: iso(c.suspendedAt ?? null),
    suspended_reason: c.suspendedReason ?? null,
    last_used_at: iso(c.lastUsedAt),
  };
}

export function credentialsApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();

  /** The credential `id` of the caller's account, or 404 (another account's id included). */
  async function ownCredential(account: string, id: string): Promise<Credential> {
    const credential = /^cr_[a-z0-9]{16}$/.test(id) ? await getCredential(kv, id) : null;
    if (!credential || credential.account !== account) throw errors.notFound("credential");
    return credential;
  }

  app.post("/", requireAdmin(), async (c) => {
    const input = await parseJson(c, CreateCredential);
    const { name, ...scopes } = scopesOf(input);
    const { credential, password } = await createCredential(kv, {
      account: c.get("principal").account,
      name: name!,
      scopes,
    });
    return c.json({ ...view(credential), password, secret_id: credential.secrets[0]!.id }, 201);
  });

  app.get("/", async (c) => {
    const list = await listCredentials(kv, c.get("principal").account);
    return c.json({ data: list.map(view) });
  });

  app.get("/:id", async (c) => {
    return c.json(view(await ownCredential(c.get("principal").account, c.req.param("id"))));
  });

  app.patch("/:id", requireAdmin(), async (c) => {
    const existing = await ownCredential(c.get("principal").account, c.req.param("id"));
    const input = await parseJson(c, UpdateCredential);
    const { suspended, ...scopes } = input;
    const updated = await updateCredential(kv, existing.id, {
      ...scopesOf(scopes),
      ...(suspended === false ? { suspended } : {}),
    });
    if (updated === null) throw errors.notFound("credential");
    if (updated === "revoked") throw errors.conflict("The credential is revoked");
    return c.json(view(updated));
  });

  /** Rotation, step one: a second secret, shown once; the first stays valid. */
  app.post("/:id/rotate", requireAdmin(), async (c) => {
    const existing = await ownCredential(c.get("principal").account, c.req.param("id"));
    const result = await addSecret(kv, existing.id);
    if (result === null) throw errors.notFound("credential");
    if (result === "revoked") throw errors.conflict("The credential is revoked");
    if (result === "full") {
      throw errors.conflict(
        "The credential already has two secrets: revoke the old one with " +
          "DELETE /v1/credentials/:id/secrets/:secretId first",
      );
    }
    return c.json({
      ...view(result.credential),
      password: result.password,
      secret_id: result.secretId,
    }, 201);
  });

  /** Rotation, step two: revokes one secret; the others keep working. */
  app.delete("/:id/secrets/:secretId", requireAdmin(), async (c) => {
    const existing = await ownCredential(c.get("principal").account, c.req.param("id"));
    const result = await removeSecret(kv, existing.id, c.req.param("secretId"));
    if (result === null || result === "unknown_secret") throw errors.notFound("secret");
    if (result === "last") {
      throw errors.conflict(
        "Cannot revoke the credential's only secret: revoke the credential with DELETE /v1/credentials/:id",
      );
    }
    return c.json(view(result));
  });

  /** Revokes the credential and all its secrets, for open SMTP sessions at their next MAIL FROM. */
  app.delete("/:id", requireAdmin(), async (c) => {
    const existing = await ownCredential(c.get("principal").account, c.req.param("id"));
    const revoked = await revokeCredential(kv, existing.id);
    if (!revoked) throw errors.notFound("credential");
    return c.json(view(revoked));
  });

  return app;
}
