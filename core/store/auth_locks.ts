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
  return (await readAuthLocksWith(kv, scope, candidates, now, [])).lock;
}

/**
 * readAuthLocks, and the entries of `also` from the same store read: a login reads its locks,
 * its failure counts and its credential at once instead of one read after another.
 */
export async function readAuthLocksWith(
  kv: Deno.Kv,
  scope: string,
  candidates: [kind: string, key: string][],
  now: number,
  also: Deno.KvKey[],
): Promise<{ lock: string | null; also: Deno.KvEntryMaybe<unknown>[] }> {
  const entries = await kv.getMany<unknown[]>([
    ...candidates.map(([kind, key]) => keys.authLock(scope, kind, key)),
    ...also,
  ]);
  const locks = entries.slice(0, candidates.length) as Deno.KvEntryMaybe<AuthLockRecord>[];
  const i = locks.findIndex((e) => e.value !== null && e.value.until > now);
  return { lock: i < 0 ? null : candidates[i]![0], also: entries.slice(candidates.length) };
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
