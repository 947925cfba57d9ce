/**
 * Idempotency keys: a request repeated within 24 h under the same key gets the first result and
 * queues nothing. The key is claimed in the message commit itself (a check that it is still
 * unclaimed, then a set), so two concurrent repeats cannot both queue: one commit wins, the other
 * fails its check and answers with the winner's id.
 */
import { keys } from "./keys.ts";

export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export interface IdempotencyRecord {
  id: string;
  at: number;
  /** A digest of the HTTP request; a repeat with a different request is a conflict. */
  fingerprint?: string;
}

export interface IdempotencyLookup {
  key: Deno.KvKey;
  /** Versionstamp the claim must check (null: never claimed, or only by an expired entry). */
  versionstamp: string | null;
  /** The first result, when the key was used within the last 24 h. */
  existing: IdempotencyRecord | null;
}

export async function lookupIdempotency(
  kv: Deno.Kv,
  account: string,
  key: string,
  now: number,
): Promise<IdempotencyLookup> {
  const entry = await kv.get<IdempotencyRecord>(keys.idempotency(account, key));
  const fresh = entry.value && now - entry.value.at < IDEMPOTENCY_TTL_MS ? entry.value : null;
  return { key: entry.key, versionstamp: entry.versionstamp, existing: fresh };
}

/** Adds the claim to the message commit: 1 check, 1 mutation. */
export function claimIdempotency(
  op: Deno.AtomicOperation,
  lookup: IdempotencyLookup,
  record: IdempotencyRecord,
) {
  op.check({ key: lookup.key, versionstamp: lookup.versionstamp });
  op.set(lookup.key, record, { expireIn: IDEMPOTENCY_TTL_MS });
}

/**
 * Two repeats in one process could meet in one group commit, where both checks see the key
 * unclaimed (checks run before any mutation of the batch). So within a process a key is held
 * from its lookup until its commit returns; a repeat waits, then finds the first result.
 * Across processes the commit check is enough: their commits never share an atomic write.
 */
const held = new Map<string, Promise<void>>();

export async function holdIdempotencyKey(account: string, key: string): Promise<() => void> {
  const id = JSON.stringify([account, key]);
  while (held.has(id)) await held.get(id);
  let release!: () => void;
  held.set(id, new Promise<void>((resolve) => (release = resolve)));
  return () => {
    held.delete(id);
    release();
  };
}
