/**
 * Who is looking at the dashboard: sign-in through the API's own bearer check (and its lockout),
 * a session cookie (HttpOnly, SameSite=Strict, Secure over TLS) naming a session in the store,
 * re-checked on every request (a revoked credential or an address outside its allowed_ips loses
 * the dashboard as it loses the API), and a per-session token every form must carry back.
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { type AppEnv, bearerAuth, type Principal } from "../auth.ts";
import { ApiError, errors, renderError } from "../errors.ts";
import { safeEqual } from "../../core/auth/secrets.ts";
import { allowsAddress, getCredential } from "../../core/store/credentials.ts";
import {
  type DashboardSession,
  deleteDashboardSession,
  getDashboardSession,
} from "../../core/store/dashboard_sessions.ts";

export const SESSION_COOKIE = "postern_session";
/** A signed-in browser stays signed in for a working day. */
export const SESSION_TTL_MS = 12 * 3_600_000;
export const BASE = "/dashboard";

export type DashEnv = {
  Variables: { principal: Principal; session: DashboardSession; sessionToken: string };
};

export function clientAddress(c: Context): string {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? "unknown";
}

function overTls(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:";
}

export function setSessionCookie(c: Context, token: string) {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: "Strict",
    secure: overTls(c),
    path: BASE,
    maxAge: Math.floor(SESSION_TTL_MS / 1000),
  });
}

export function clearSessionCookie(c: Context) {
  deleteCookie(c, SESSION_COOKIE, { path: BASE, secure: overTls(c) });
}

export interface SignInDeps {
  kv: Deno.Kv;
  adminTokenHash: string;
  defaultAccount: string;
  /** The API's auth-failure lock (http/limits.ts), shared so failed sign-ins count there too. */
  authLock: MiddlewareHandler;
}

export type SignInResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: number; message: string };

/**
 * Checks a token exactly as the API does, by asking the API's own middleware: the lock first,
 * then bearerAuth. A refused API key counts toward the client's lockout like a refused bearer.
 */
export function signInCheck(deps: SignInDeps) {
  const app = new Hono<AppEnv>();
  app.onError(renderError);
  app.use("*", deps.authLock);
  app.use("*", bearerAuth(deps));
  app.get("/", (c) => c.json(c.get("principal")));
  return async (c: Context, token: string): Promise<SignInResult> => {
    const res = await app.request("http://dashboard.internal/", {
      headers: { authorization: `Bearer ${token.trim() || "-"}` },
    }, c.env);
    const body = await res.json();
    if (res.ok) {
      const principal = body as Principal;
      if (principal.kind === "credential") {
        const credential = await getCredential(deps.kv, principal.credentialId!);
        if (!credential || !allowsAddress(credential, clientAddress(c))) {
          return { ok: false, status: 403, message: "This key may not be used from your address" };
        }
      }
      return { ok: true, principal };
    }
    return {
      ok: false,
      status: res.status,
      message: res.status === 429
        ? "Too many failed sign-ins from your address; try again later"
        : "That token is not the admin token or a live API key",
    };
  };
}

/**
 * Pages past sign-in. Without a live session a page redirects to the sign-in form; a form post
 * must carry the session's token in `_csrf` (hono/csrf has already refused a cross-origin one).
 */
export function requireSession(kv: Deno.Kv): MiddlewareHandler<DashEnv> {
  return async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE) ?? "";
    const session = token ? await getDashboardSession(kv, token) : null;
    const toSignIn = () => {
      if (token) clearSessionCookie(c);
      if (c.req.method === "GET") {
        return c.redirect(`${BASE}/sign-in?next=${encodeURIComponent(c.req.path)}`, 303);
      }
      throw new ApiError(401, "unauthorized", "Your session has ended; sign in again");
    };
    if (!session) return toSignIn();
    if (session.kind === "credential") {
      const credential = await getCredential(kv, session.credentialId!);
      if (!credential || credential.revokedAt !== null) {
        await deleteDashboardSession(kv, token);
        return toSignIn();
      }
      if (!allowsAddress(credential, clientAddress(c))) {
        throw errors.forbidden("this key may not be used from your address");
      }
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const form = await c.req.parseBody();
      const sent = typeof form["_csrf"] === "string" ? form["_csrf"] : "";
      if (!safeEqual(sent, session.csrf)) {
        throw errors.forbidden("the form's security token is missing or stale; reload the page");
      }
    }
    c.set("session", session);
    c.set("sessionToken", token);
    c.set("principal", {
      kind: session.kind,
      account: session.account,
      credentialId: session.credentialId,
    });
    await next();
  };
}
