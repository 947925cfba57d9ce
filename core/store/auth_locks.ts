/**
 * Failed-login lockouts every node honours: a lock key per locked client address or username,
 * expiring with the lock. Failures themselves are counted in window_counts.ts.
 */
import { keys } from "./keys.ts";

export interface AuthLockRecord {
  until: number;
}

/** The first of `candidates` ([kind, key]) locked at `now`, or null. */
export async function readAuthLocks(
  kv: Deno.Kv,
  scope: string,
  candidates: [kind: string, key: string][],
  now: number,
): Promise<string | null> {
  const entries = await kv.getMany<AuthLockRecord[]>(
    candidates.map(([kind, key]) => keys.authLock(scope, kind, key)),
  );
  const i = entries.findIndex((e) => e.value !== null && e.value.until > now);
  return i < 0 ? null : candidates[i]![0];
}

export async function writeAuthLock(
  kv: Deno.Kv,
  scope: string,
  kind: string,
  key: string,
  until: number,
  now: number,
): Promise<void> {
  await kv.set(keys.authLock(scope, kind, key), { until }, {
    expireIn: Math.max(1_000, until - now),
  });
}
