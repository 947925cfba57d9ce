/**
 * Recipients accepted per credential per UTC day, for `daily_quota`. The count is a KV sum in the
 * message's own commit, so it is exact, shared by every node and survives restarts, and costs no
 * extra commit (a `sum` never conflicts, so it rides in the group commit at no cost).
 */
import { keys } from "./keys.ts";

/** The UTC day of `ms` as YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Adds an accepted message's recipients to the credential's count for the day of `at`. */
export function countAccepted(
  op: Deno.AtomicOperation,
  credentialId: string,
  at: number,
  recipients: number,
) {
  op.sum(keys.credentialDay(credentialId, utcDay(at)), BigInt(recipients));
}

export async function acceptedOn(kv: Deno.Kv, credentialId: string, at: number): Promise<number> {
  const entry = await kv.get<Deno.KvU64>(keys.credentialDay(credentialId, utcDay(at)));
  return entry.value ? Number(entry.value.value) : 0;
}
