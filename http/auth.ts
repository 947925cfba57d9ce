/**
 * Bearer authentication: the admin token (compared in constant time) or a credential's API key.
 * Resolves the principal once per request and leaves it on the context.
 *
 * A key's `allowed_ips` hold for every request made with it, reads included: a key copied off
 * its network reads nothing, as it sends nothing.
 *
 * Tenancy: a credential key acts on its own account only. The admin token acts on the default
 * account, or on the one named by `X-Postern-Account: <id>` (404 when there is no such account).
 */
import type { MiddlewareHandler } from "hono";
import { safeEqual, sha256 } from "../core/auth/secrets.ts";
import { allowsAddress, touchCredential, verifyApiKey } from "../core/store/credentials.ts";
import { getAccount } from "../core/store/accounts.ts";
import { errors } from "./errors.ts";
import { clientAddress } from "./limits.ts";
import { metrics } from "../core/metrics.ts";
import type { MemoryHold } from "../core/policy/memory_budget.ts";

export interface Principal {
  kind: "admin" | "credential";
  account: string;
  credentialId: string | null;
}

export type AppEnv = {
  Variables: {
    principal: Principal;
    /** The request's hold on the memory budget (http/limits.ts memoryBudgetLimit), if any. */
    memory: MemoryHold | undefined;
  };
};

export const ACCOUNT_HEADER = "x-postern-account";

export function bearerAuth(
  options: { kv: Deno.Kv; adminTokenHash: string; defaultAccount: string },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw errors.unauthorized();
    const token = m[1]!;
    const named = c.req.header(ACCOUNT_HEADER)?.trim();
    if (safeEqual(sha256(token), options.adminTokenHash)) {
      let account = options.defaultAccount;
      if (named !== undefined && named !== "") {
        if (named.length > 64 || !(await getAccount(options.kv, named))) {
          throw errors.notFound("account");
        }
        account = named;
      }
      c.set("principal", { kind: "admin", account, credentialId: null });
      return next();
    }
    const credential = token.startsWith("pst_") ? await verifyApiKey(options.kv, token) : null;
    if (!credential) {
      metrics.authFailures.inc({ protocol: "http" });
      throw errors.unauthorized();
    }
    const client = clientAddress(c);
    if (!allowsAddress(credential, client)) {
      throw errors.forbidden(`using this credential from ${client}`);
    }
    if (named !== undefined && named !== "" && named !== credential.account) {
      throw errors.forbidden("a credential key acts on its own account only");
    }
    touchCredential(options.kv, credential).catch(() => {});
    c.set("principal", {
      kind: "credential",
      account: credential.account,
      credentialId: credential.id,
    });
    return next();
  };
}

export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.get("principal").kind !== "admin") throw errors.forbidden("admin token required");
    await next();
  };
}
