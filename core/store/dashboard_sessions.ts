/**
 * Dashboard sessions: what a browser holds after signing in with the admin token or an API key.
 * The cookie carries a random token; the store keeps the session under a digest of it, so a copy
 * of the store opens no browser session. Sessions expire on their own (KV expireIn, and the
 * stored deadline, as expiry is lazy) and signing out deletes them at once.
 */
import { keys } from "./keys.ts";
import { randomToken, sha256 } from "../auth/secrets.ts";

export interface DashboardSession {
  kind: "admin" | "credential";
  /** The account the pages show; the admin may switch it, a credential never does. */
  account: string;
  credentialId: string | null;
  /** The per-session token every form carries back (the CSRF check). */
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export type NewSession = Pick<DashboardSession, "kind" | "account" | "credentialId">;

export async function createDashboardSession(
  kv: Deno.Kv,
  session: NewSession,
  ttlMs: number,
  now = Date.now(),
): Promise<{ token: string; session: DashboardSession }> {
  const token = randomToken(32);
  const stored: DashboardSession = {
    ...session,
    csrf: randomToken(24),
    createdAt: now,
    expiresAt: now + ttlMs,
  };
  await kv.set(keys.dashboardSession(sha256(token)), stored, { expireIn: ttlMs });
  return { token, session: stored };
}

export async function getDashboardSession(
  kv: Deno.Kv,
  token: string,
  now = Date.now(),
): Promise<DashboardSession | null> {
  if (token.length < 16 || token.length > 128) return null;
  const entry = await kv.get<DashboardSession>(keys.dashboardSession(sha256(token)));
  if (!entry.value || entry.value.expiresAt <= now) return null;
  return entry.value;
}

/** Points an admin session at another account, keeping its deadline. */
export async function switchSessionAccount(
  kv: Deno.Kv,
  token: string,
  account: string,
  now = Date.now(),
): Promise<boolean> {
  const key = keys.dashboardSession(sha256(token));
  const entry = await kv.get<DashboardSession>(key);
  if (!entry.value || entry.value.kind !== "admin" || entry.value.expiresAt <= now) return false;
  const res = await kv.atomic().check(entry).set(key, { ...entry.value, account }, {
    expireIn: entry.value.expiresAt - now,
  }).commit();
  return res.ok;
}

export async function deleteDashboardSession(kv: Deno.Kv, token: string): Promise<void> {
  await kv.delete(keys.dashboardSession(sha256(token)));
}
