/**
 * Bearer authentication: the admin token (compared in constant time) or a credential's API key.
 * Resolves the principal once per request and leaves it on the context.
 */
import type { MiddlewareHandler } from "hono";
import { safeEqual, sha256 } from "../core/auth/secrets.ts";
import { verifyApiKey } from "../core/store/credentials.ts";
import { errors } from "./errors.ts";

export interface Principal {
  kind: "admin" | "credential";
  account: string;
  credentialId: string | null;
}

export type AppEnv = { Variables: { principal: Principal } };

export function bearerAuth(
  options: { kv: Deno.Kv; adminTokenHash: string; defaultAccount: string },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw errors.unauthorized();
    const token = m[1]!;
    if (safeEqual(sha256(token), options.adminTokenHash)) {
      c.set("principal", { kind: "admin", account: options.defaultAccount, credentialId: null });
      return next();
    }
    const credential = token.startsWith("pst_") ? await verifyApiKey(options.kv, token) : null;
    if (!credential) throw errors.unauthorized();
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
