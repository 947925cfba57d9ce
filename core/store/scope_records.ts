/**
 * What a transaction's send scope is made of, read in one snapshot: the credential (if any), its
 * account and, when the caller already knows the envelope sender, who holds the sender's domain.
 * These were two or three reads one after another at every MAIL FROM (each a store round trip
 * and, on a local file, a SQLite read on the main thread); read together they are one. Nothing
 * is kept between transactions: core/send_scope.ts re-reads them at every MAIL FROM. (Only the
 * ids of the domains last found under a name are remembered, as a guess of which claim records to
 * read along; the read itself says whether the guess held.)
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
  let guess = withNames ? guessedIds(names) : [];
  if (head.length + names.length + guess.length > GET_MANY_MAX) guess = [];
  const read = await kv.getMany<unknown[]>(
    withNames ? [...head, ...names, ...guess.map(keys.domainClaim)] : head,
  );
  const records: ScopeRecords = {
    account: accountFrom(read[0]!.value as Account | null),
    credential: credentialId === null ? null : credentialFrom(read[1]!.value as Credential | null),
  };
  if (senderDomain !== undefined && withNames) {
    const found = read.slice(head.length, head.length + names.length);
    const ids = found.flatMap((e) => e.value ? [e.value as string] : []);
    names.forEach((key, i) => remember(key, found[i]!.value as string | null));
    // The guess held (the same ids, read in the same snapshot as the names) and each domain has
    // its claim record: who holds the domain is known without a second read.
    const claims = read.slice(head.length + names.length).map((e) => e.value as DomainClaim | null);
    records.claims = sameIds(ids, guess) && claims.every((c) => c !== null)
      ? claims as DomainClaim[]
      : await claimsOfIds(kv, ids);
  }
  return records;
}

/**
 * The ids last found under domain names, by name: the claim records to read along with the
 * names. A guess only (checked against the names read with it), so a domain removed, or added
 * again under a new id, costs one read more once, never a wrong answer. Bounded: cleared when full.
 */
const idByName = new Map<string, string>();
const MAX_REMEMBERED = 10_000;

function nameOf(key: Deno.KvKey): string {
  return key[key.length - 1] as string;
}

/** The remembered ids of the domains under `names`, in their order. */
function guessedIds(names: readonly Deno.KvKey[]): string[] {
  if (idByName.size === 0) return [];
  const out: string[] = [];
  for (const key of names) {
    const id = idByName.get(nameOf(key));
    if (id !== undefined) out.push(id);
  }
  return out;
}

function remember(key: Deno.KvKey, id: string | null) {
  const name = nameOf(key);
  if (id === null) {
    idByName.delete(name);
    return;
  }
  if (idByName.get(name) === id) return;
  if (idByName.size >= MAX_REMEMBERED) idByName.clear();
  idByName.set(name, id);
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
