/**
 * What a transaction's send scope is made of, read in one snapshot: the credential (if any), its
 * account and, when the caller already knows the envelope sender, who holds the sender's domain.
 * These were two or three reads one after another at every MAIL FROM (each a store round trip
 * and, on a local file, a SQLite read on the main thread); read together they are one. Nothing
 * is kept between transactions: core/send_scope.ts re-reads them at every MAIL FROM.
 */
import { keys } from "./keys.ts";
import { type Account, accountFrom } from "./accounts.ts";
import { type Credential, credentialFrom } from "./credentials.ts";
import { claimNameKeys, claimsOfIds, type DomainClaim } from "./domains.ts";

/** Deno KV's most keys one getMany reads. */
const GET_MANY_MAX = 10;

export interface ScopeRecords {
  credential: Credential | null;
  account: Account | null;
  /** Who holds `senderDomain` (as domainClaims answers); absent when it was not read here. */
  claims?: DomainClaim[];
}

/**
 * The records of one scope. `senderDomain` (in A-label form) is read along when its names fit
 * in the same read; otherwise `claims` is left out and the check reads them itself.
 */
export async function readScopeRecords(
  kv: Deno.Kv,
  account: string,
  credentialId: string | null,
  senderDomain?: string,
): Promise<ScopeRecords> {
  const head: Deno.KvKey[] = [
    keys.account(account),
    ...(credentialId === null ? [] : [keys.credential(credentialId)]),
  ];
  const names = senderDomain === undefined ? [] : claimNameKeys(senderDomain);
  const withNames = head.length + names.length <= GET_MANY_MAX;
  const read = await kv.getMany<unknown[]>(withNames ? [...head, ...names] : head);
  const records: ScopeRecords = {
    account: accountFrom(read[0]!.value as Account | null),
    credential: credentialId === null ? null : credentialFrom(read[1]!.value as Credential | null),
  };
  if (senderDomain !== undefined && withNames) {
    const ids = read.slice(head.length).flatMap((e) => e.value ? [e.value as string] : []);
    records.claims = await claimsOfIds(kv, ids);
  }
  return records;
}
