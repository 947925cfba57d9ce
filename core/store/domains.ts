/**
 * Sending domains and their DKIM keys. A domain belongs to one account (its name is unique across
 * the store, so two tenants never publish competing selectors for one name). Its private keys are
 * secrets: stored sealed (core/auth/secret_box.ts, each bound to its domain and selector), they
 * leave this module only as signing keys handed to intake, never in a view or log.
 *
 * Key life: a new domain's keys are `active` but sign nothing until the domain is verified.
 * Rotation adds `pending` keys under a new selector; signing stays with the active ones until a
 * verification finds every pending record published, then the pending keys become active and
 * the old ones `retired` (their private key is deleted; their DNS record may go once mail
 * signed with it has been delivered).
 *
 * @module
 */
import { keys } from "./keys.ts";
import { shortId } from "../ids.ts";
import { type DkimAlgorithm, type DkimSigningKey, generateDkimKey } from "../mail/dkim.ts";
import type { RecordPurpose, RecordState } from "../mail/dns_records.ts";
import { SecretBox } from "../auth/secret_box.ts";

export type KeyStatus = "active" | "pending" | "retired";

export interface DomainKey {
  selector: string;
  algorithm: DkimAlgorithm;
  /** The DNS `p=` value. */
  publicKey: string;
  /** PKCS#8 PEM, sealed (records from before encryption: in clear); null once retired. */
  privateKey: string | null;
  status: KeyStatus;
  createdAt: number;
  activatedAt: number | null;
  retiredAt: number | null;
}

export interface RecordResult {
  purpose: RecordPurpose;
  name: string;
  state: RecordState;
  selector?: string;
}

export interface SendingDomain {
  id: string;
  account: string;
  name: string;
  createdAt: number;
  keys: DomainKey[];
  /** Whether the last verification found every active key's DKIM record published. */
  verified: boolean;
  verifiedAt: number | null;
  lastCheck: { at: number; records: RecordResult[] } | null;
}

/** `pst<yyyymm>`, then `pst<yyyymm>r2`, `r3`… when taken; Ed25519 selectors end in `e`. */
function newSelectors(
  taken: readonly string[],
  algorithms: readonly DkimAlgorithm[],
  now: number,
): Map<DkimAlgorithm, string> {
  const month = new Date(now).toISOString().slice(0, 7).replace("-", "");
  for (let n = 1;; n++) {
    const base = `pst${month}${n === 1 ? "" : `r${n}`}`;
    const names = new Map(algorithms.map((a) => [a, a === "ed25519" ? `${base}e` : base]));
    if (![...names.values()].some((s) => taken.includes(s))) return names;
  }
}

function newKeys(
  algorithms: readonly DkimAlgorithm[],
  taken: readonly string[],
  status: KeyStatus,
  now: number,
): DomainKey[] {
  const selectors = newSelectors(taken, algorithms, now);
  return algorithms.map((algorithm) => {
    const pair = generateDkimKey(algorithm);
    return {
      selector: selectors.get(algorithm)!,
      algorithm,
      publicKey: pair.publicKey,
      privateKey: pair.privateKey,
      status,
      createdAt: now,
      activatedAt: status === "active" ? now : null,
      retiredAt: null,
    };
  });
}

function sealContext(domainId: string, selector: string): string {
  return `dkim:${domainId}:${selector}`;
}

/** The keys with their private keys sealed (those already sealed, or retired, as they are). */
function sealKeys(keyList: DomainKey[], box: SecretBox, domainId: string): Promise<DomainKey[]> {
  return Promise.all(
    keyList.map(async (k) =>
      k.privateKey === null || SecretBox.isSealed(k.privateKey)
        ? k
        : { ...k, privateKey: await box.seal(k.privateKey, sealContext(domainId, k.selector)) }
    ),
  );
}

/** A new domain with fresh keys, or "exists" when any account already has that name. */
export async function createDomain(
  kv: Deno.Kv,
  box: SecretBox,
  input: { account: string; name: string; algorithms: readonly DkimAlgorithm[]; now?: number },
): Promise<SendingDomain | "exists"> {
  const now = input.now ?? Date.now();
  const id = shortId("dom_", 16);
  const domain: SendingDomain = {
    id,
    account: input.account,
    name: input.name,
    createdAt: now,
    keys: await sealKeys(newKeys(input.algorithms, [], "active", now), box, id),
    verified: false,
    verifiedAt: null,
    lastCheck: null,
  };
  const res = await kv.atomic()
    .check({ key: keys.domainByName(domain.name), versionstamp: null })
    .set(keys.domain(domain.id), domain)
    .set(keys.domainClaim(domain.id), claimOf(domain))
    .set(keys.domainByName(domain.name), domain.id)
    .commit();
  if (!res.ok) return "exists";
  forgetSigningKeys();
  return domain;
}

export async function getDomain(kv: Deno.Kv, id: string): Promise<SendingDomain | null> {
  return (await kv.get<SendingDomain>(keys.domain(id))).value;
}

export async function listDomains(kv: Deno.Kv, account: string): Promise<SendingDomain[]> {
  const out: SendingDomain[] = [];
  for await (const e of kv.list<SendingDomain>({ prefix: keys.domainPrefix() })) {
    if (e.value.account === account) out.push(e.value);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function deleteDomain(kv: Deno.Kv, id: string): Promise<boolean> {
  const entry = await kv.get<SendingDomain>(keys.domain(id));
  if (!entry.value) return false;
  await kv.atomic().check(entry).delete(keys.domain(id)).delete(keys.domainClaim(id)).delete(
    keys.domainByName(entry.value.name),
  ).commit();
  forgetSigningKeys();
  return true;
}

async function mutate<R extends string>(
  kv: Deno.Kv,
  id: string,
  change: (d: SendingDomain) => SendingDomain | R,
): Promise<SendingDomain | R | null> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get<SendingDomain>(keys.domain(id));
    if (!entry.value) return null;
    const next = change(entry.value);
    if (typeof next === "string") return next;
    const res = await kv.atomic().check(entry).set(keys.domain(id), next)
      .set(keys.domainClaim(id), claimOf(next)).commit();
    if (res.ok) {
      forgetSigningKeys();
      return next;
    }
  }
  throw new Error(`Cannot update domain ${id}: it kept changing under concurrent writes`);
}

/**
 * Starts a key rotation: pending keys (same algorithms as the active ones) under a new selector.
 * "pending" when a rotation is already waiting for its DNS records.
 */
export async function rotateDomainKeys(
  kv: Deno.Kv,
  box: SecretBox,
  id: string,
  now = Date.now(),
): Promise<SendingDomain | "pending" | null> {
  const current = await getDomain(kv, id);
  if (!current) return null;
  const algorithms = [
    ...new Set(current.keys.filter((k) => k.status === "active").map((k) => k.algorithm)),
  ];
  // Generated and sealed once: a retried compare-and-set must not hand out a second set of keys.
  const fresh = await sealKeys(
    newKeys(
      algorithms.length ? algorithms : ["rsa"],
      current.keys.map((k) => k.selector),
      "pending",
      now,
    ),
    box,
    id,
  );
  return mutate(kv, id, (d) => {
    if (d.keys.some((k) => k.status === "pending")) return "pending" as const;
    // A rotation that finished meanwhile took these selectors: this one is then already done.
    if (d.keys.some((k) => fresh.some((f) => f.selector === k.selector))) return "pending" as const;
    return { ...d, keys: [...d.keys, ...fresh] };
  });
}

/**
 * Records a verification. When every pending key's record was found, the pending keys become
 * active and the active ones retire. The domain is verified when every active key's record is.
 */
export function recordVerification(
  kv: Deno.Kv,
  id: string,
  records: readonly RecordResult[],
  now = Date.now(),
): Promise<SendingDomain | null> {
  return mutate<never>(kv, id, (d) => {
    const published = (k: DomainKey) =>
      records.some((r) =>
        r.purpose === "dkim" && r.selector === k.selector && r.state === "verified"
      );
    const pending = d.keys.filter((k) => k.status === "pending");
    let keyList = d.keys;
    if (pending.length > 0 && pending.every(published)) {
      keyList = d.keys.map((k): DomainKey => {
        if (k.status === "pending") return { ...k, status: "active", activatedAt: now };
        if (k.status === "active") {
          return { ...k, status: "retired", privateKey: null, retiredAt: now };
        }
        return k;
      });
    }
    const active = keyList.filter((k) => k.status === "active");
    const verified = active.length > 0 && active.every(published);
    return {
      ...d,
      keys: keyList,
      verified,
      verifiedAt: verified ? now : d.verifiedAt,
      lastCheck: { at: now, records: [...records] },
    };
  });
}

// Signing keys by account and From domain, cached briefly: intake asks once per message. Every
// domain write in this process clears the cache; other nodes see a change within the TTL.
const SIGNING_CACHE_TTL_MS = 30_000;
const signingCache = new Map<string, { keys: DkimSigningKey[]; until: number }>();

function forgetSigningKeys() {
  signingCache.clear();
}

/** The domain and its parents, most specific first, down to two labels. */
function candidateNames(domain: string): string[] {
  const labels = domain.toLowerCase().replace(/\.$/, "").split(".");
  const out: string[] = [];
  for (let i = 0; i <= labels.length - 2; i++) out.push(labels.slice(i).join("."));
  return out;
}

/** Who holds a sending domain: the account that added it and whether it is verified. */
export interface DomainClaim {
  name: string;
  account: string;
  verified: boolean;
}

/**
 * The added domains that `domain` is or lies under, most specific first: whoever sends as
 * `domain` claims to speak for each of them. `domain` is compared in A-label form.
 */
export async function domainClaims(kv: Deno.Kv, domain: string): Promise<DomainClaim[]> {
  // Every parent is looked at, however many labels (a parent left out would let a long
  // subdomain past its owner), in batches of ten (Deno KV's getMany limit).
  const names = claimNameKeys(domain);
  const ids: string[] = [];
  for (let i = 0; i < names.length; i += 10) {
    const batch = await kv.getMany<string[]>(names.slice(i, i + 10));
    for (const e of batch) if (e.value) ids.push(e.value);
  }
  return await claimsOfIds(kv, ids);
}

/** What {@linkcode domainClaims} reads first: `domain` and each parent, by name. */
export function claimNameKeys(domain: string): Deno.KvKey[] {
  return candidateNames(domain).filter((n) => n.length <= 253).map(keys.domainByName);
}

/** What ["domain_claim", id] holds: a domain's owner, without its keys and DNS checks. */
function claimOf(d: SendingDomain): DomainClaim {
  return { name: d.name, account: d.account, verified: d.verified };
}

/**
 * The claims behind the domain ids found under {@linkcode claimNameKeys}, in their order. Read
 * from the small claim records (every MAIL FROM of a domain's mail reads them; the domain record
 * itself, sealed keys and DNS results, is some KB: 3.2 with one RSA key); a domain not written
 * since claim records came is read whole.
 */
export async function claimsOfIds(kv: Deno.Kv, ids: readonly string[]): Promise<DomainClaim[]> {
  const out: DomainClaim[] = [];
  for (let i = 0; i < ids.length; i += 10) {
    const batch = ids.slice(i, i + 10);
    const claims = await kv.getMany<DomainClaim[]>(batch.map(keys.domainClaim));
    const missing = batch.filter((_, j) => claims[j]!.value === null);
    const whole = missing.length === 0
      ? []
      : await kv.getMany<SendingDomain[]>(missing.map(keys.domain));
    let w = 0;
    for (const { value: claim } of claims) {
      if (claim) {
        out.push(claim);
        continue;
      }
      const d = whole[w++]!.value;
      if (d) out.push(claimOf(d));
    }
  }
  return out;
}

/**
 * The keys to sign mail from `fromDomain` with: the active keys of the most specific verified
 * domain of `account` that is `fromDomain` or a parent of it (DMARC relaxed alignment), else [].
 */
export async function signingKeysFor(
  kv: Deno.Kv,
  box: SecretBox,
  account: string,
  fromDomain: string,
  now = Date.now(),
): Promise<DkimSigningKey[]> {
  const cacheKey = `${account}\n${fromDomain}`;
  const cached = signingCache.get(cacheKey);
  if (cached && cached.until > now) return cached.keys;
  let found: DkimSigningKey[] = [];
  for (const name of candidateNames(fromDomain).slice(0, 10)) {
    const id = (await kv.get<string>(keys.domainByName(name))).value;
    const domain = id ? await getDomain(kv, id) : null;
    if (!domain || domain.account !== account || !domain.verified) continue;
    found = await Promise.all(
      domain.keys.filter((k) => k.status === "active" && k.privateKey).map(async (k) => ({
        domain: domain.name,
        selector: k.selector,
        algorithm: k.algorithm,
        privateKey: await box.open(k.privateKey!, sealContext(domain.id, k.selector)),
        version: `${domain.id}:${k.createdAt}`,
      })),
    );
    break;
  }
  if (signingCache.size > 10_000) signingCache.clear();
  signingCache.set(cacheKey, { keys: found, until: now + SIGNING_CACHE_TTL_MS });
  return found;
}

/** Seals the private keys of domains stored before encryption; returns how many were sealed. */
export async function sealDomainKeys(kv: Deno.Kv, box: SecretBox): Promise<number> {
  let sealed = 0;
  const plain = (d: SendingDomain) =>
    d.keys.filter((k) => k.privateKey !== null && !SecretBox.isSealed(k.privateKey)).length;
  for await (const e of kv.list<SendingDomain>({ prefix: keys.domainPrefix() })) {
    const count = plain(e.value);
    if (count === 0) continue;
    const keyList = await sealKeys(e.value.keys, box, e.value.id);
    // mutate() retries on a concurrent write; the keys sealed above stay valid for the record.
    const sealedKey = new Map(keyList.map((k) => [k.selector, k.privateKey]));
    await mutate<never>(kv, e.value.id, (d) => ({
      ...d,
      keys: d.keys.map((k) =>
        k.privateKey !== null && !SecretBox.isSealed(k.privateKey) && sealedKey.get(k.selector)
          ? { ...k, privateKey: sealedKey.get(k.selector)! }
          : k
      ),
    }));
    sealed += count;
  }
  return sealed;
}
