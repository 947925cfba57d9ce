/**
 * SMTP/API credentials. A secret is shown once, when it is issued; the store keeps an scrypt hash.
 * A successful verification is remembered briefly (keyed by a digest of the secret) so apps that
 * open a connection per message do not pay scrypt each time; the record itself is re-read on
 * every login and every SMTP transaction, so revocation (of a secret or the whole credential)
 * and scope changes take effect at once, on every node.
 *
 * Rotation: a credential holds up to two secrets at once. `addSecret` issues the new one while
 * the old stays valid until `removeSecret` revokes it, so an app can be re-keyed without a gap.
 */
import { keys } from "./keys.ts";
import { hashSecret, randomToken, type SecretHash, sha256, verifySecret } from "../auth/secrets.ts";
import { shortId } from "../ids.ts";
import { networkMatcher } from "../net/cidr.ts";
import type { SubmissionFault } from "../policy/sandbox.ts";

export interface CredentialSecret {
  id: string;
  hash: SecretHash;
  createdAt: number;
}

/** What a credential may do; every field is optional input with the default shown. */
export interface CredentialScopes {
  /** Sender domains (MAIL FROM and From: align with one, exactly or as a subdomain); [] = any. */
  domains: string[];
  /** CIDRs AUTH may come from; [] = anywhere. */
  allowedIps: string[];
  /** e.g. "100/min" (core/policy/duration.ts parseRate); null = unlimited. */
  rateLimit: string | null;
  /** Messages per UTC day; null = unlimited. */
  dailyQuota: number | null;
  /** The source-IP pool the delivery side sends this credential's mail from; null = default. */
  pool: string | null;
  /** Further pools its mail may choose with `X-Postern-Pool` (its `pool` is always allowed). */
  pools: string[];
  /** Whether bounces send a DSN to the sender. */
  dsn: boolean;
  /** Test mode: mail goes through everything but leaves only for the simulated MX. */
  testMode: boolean;
  /** A submission fault every transaction plays (core/policy/sandbox.ts); null = none. */
  sandboxSubmission: SubmissionFault | null;
}

export const DEFAULT_SCOPES: Readonly<CredentialScopes> = {
  domains: [],
  allowedIps: [],
  rateLimit: null,
  dailyQuota: null,
  pool: null,
  pools: [],
  dsn: true,
  testMode: false,
  sandboxSubmission: null,
};

export interface Credential extends CredentialScopes {
  id: string;
  account: string;
  name: string;
  username: string;
  secrets: CredentialSecret[];
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
  /**
   * Set by the abuse brake (too many messages rejected or held by the content scan): the
   * credential may log in but not send until an admin clears it (PATCH `suspended: false`).
   */
  suspendedAt?: number | null;
  suspendedReason?: string | null;
}

export type PublicCredential = Omit<Credential, "secrets"> & {
  secrets: { id: string; createdAt: number }[];
};

/** A credential holds at most this many live secrets: the current one and its successor. */
export const MAX_SECRETS = 2;

export const KEY_PREFIX = "pst_";

export function publicView(c: Credential): PublicCredential {
  return { ...c, secrets: c.secrets.map(({ id, createdAt }) => ({ id, createdAt })) };
}

/**
 * A new secret for credential `id`: 192 random bits behind `pst_<credential>_`. The key names its
 * credential, so it also works alone as an HTTP bearer key or XOAUTH2 token.
 */
async function newSecret(id: string, now: number) {
  const password = `${KEY_PREFIX}${id.slice(3)}_${randomToken(24)}`;
  const secret: CredentialSecret = {
    id: shortId("sk_", 8),
    hash: await hashSecret(password),
    createdAt: now,
  };
  return { password, secret };
}

/** Records written before scopes existed read as the defaults. */
function withDefaults(c: Credential): Credential {
  return { ...DEFAULT_SCOPES, ...c };
}

export async function createCredential(
  kv: Deno.Kv,
  input: { account: string; name: string; scopes?: Partial<CredentialScopes>; now?: number },
): Promise<{ credential: Credential; password: string }> {
  const now = input.now ?? Date.now();
  const id = shortId("cr_", 16);
  const { password, secret } = await newSecret(id, now);
  const credential: Credential = {
    ...DEFAULT_SCOPES,
    ...input.scopes,
    id,
    account: input.account,
    name: input.name,
    username: id,
    secrets: [secret],
    createdAt: now,
    revokedAt: null,
    lastUsedAt: null,
  };
  const res = await kv.atomic()
    .check({ key: keys.credentialByUser(credential.username), versionstamp: null })
    .set(keys.credential(id), credential)
    .set(keys.credentialByUser(credential.username), id)
    .commit();
  if (!res.ok) throw new Error(`Cannot create credential: username ${id} exists`);
  return { credential, password };
}

export async function listCredentials(kv: Deno.Kv, account: string): Promise<Credential[]> {
  const out: Credential[] = [];
  for await (const e of kv.list<Credential>({ prefix: keys.credentialPrefix() })) {
    if (e.value.account === account) out.push(withDefaults(e.value));
  }
  return out;
}

export async function getCredential(kv: Deno.Kv, id: string): Promise<Credential | null> {
  return credentialFrom((await kv.get<Credential>(keys.credential(id))).value);
}

/** A credential as stored (by a read of its key, keys.credential) with its scopes' defaults. */
export function credentialFrom(value: Credential | null): Credential | null {
  return value ? withDefaults(value) : null;
}

/**
 * Applies `change` to the stored record with a compare-and-set, retrying on a concurrent write.
 * `change` returns the new record, or a string that is handed back unchanged (a refusal).
 */
async function mutate<R extends string>(
  kv: Deno.Kv,
  id: string,
  change: (c: Credential) => Credential | R | Promise<Credential | R>,
): Promise<Credential | R | null> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get<Credential>(keys.credential(id));
    if (!entry.value) return null;
    const next = await change(withDefaults(entry.value));
    if (typeof next === "string") return next;
    const res = await kv.atomic().check(entry).set(keys.credential(id), next).commit();
    if (res.ok) return next;
  }
  throw new Error(`Cannot update credential ${id}: it kept changing under concurrent writes`);
}

/**
 * Changes name and scopes; a revoked credential stays as it was ("revoked"). `suspended: false`
 * lifts an abuse-brake suspension.
 */
export function updateCredential(
  kv: Deno.Kv,
  id: string,
  patch: Partial<CredentialScopes> & { name?: string; suspended?: false },
): Promise<Credential | "revoked" | null> {
  const { suspended, ...rest } = patch;
  return mutate(kv, id, (c) => {
    if (c.revokedAt !== null) return "revoked" as const;
    const lifted = suspended === false ? { suspendedAt: null, suspendedReason: null } : {};
    return { ...c, ...rest, ...lifted };
  });
}

/** The abuse brake: the credential stops sending; null when there is none, or it was suspended already. */
export async function suspendCredential(
  kv: Deno.Kv,
  id: string,
  reason: string,
  now = Date.now(),
): Promise<Credential | null> {
  const result = await mutate(kv, id, (c) => {
    if (c.revokedAt !== null || (c.suspendedAt ?? null) !== null) return "unchanged" as const;
    return { ...c, suspendedAt: now, suspendedReason: reason };
  });
  return typeof result === "string" ? null : result;
}

/** Whether the abuse brake has stopped this credential from sending. */
export function isSuspended(c: Credential): boolean {
  return (c.suspendedAt ?? null) !== null;
}

/** Rotation, step one: issues a second secret (returned once); the first stays valid. */
export async function addSecret(
  kv: Deno.Kv,
  id: string,
  now = Date.now(),
): Promise<
  { credential: Credential; secretId: string; password: string } | "revoked" | "full" | null
> {
  const issued = await newSecret(id, now);
  const result = await mutate(kv, id, (c) => {
    if (c.revokedAt !== null) return "revoked" as const;
    if (c.secrets.length >= MAX_SECRETS) return "full" as const;
    return { ...c, secrets: [...c.secrets, issued.secret] };
  });
  if (result === null || typeof result === "string") return result;
  return { credential: result, secretId: issued.secret.id, password: issued.password };
}

/** Rotation, step two: revokes one secret. The last one cannot go ("last"): revoke the credential. */
export async function removeSecret(
  kv: Deno.Kv,
  id: string,
  secretId: string,
): Promise<Credential | "unknown_secret" | "last" | null> {
  const result = await mutate(kv, id, (c) => {
    if (!c.secrets.some((s) => s.id === secretId)) return "unknown_secret" as const;
    if (c.secrets.length === 1) return "last" as const;
    return { ...c, secrets: c.secrets.filter((s) => s.id !== secretId) };
  });
  forgetVerified(id);
  return result;
}

/** Whether the key may be used from `address` (SMTP AUTH, every HTTP request). */
export function allowsAddress(c: Credential, address: string): boolean {
  return c.allowedIps.length === 0 || networkMatcher(c.allowedIps)(address);
}

export async function revokeCredential(
  kv: Deno.Kv,
  id: string,
  now = Date.now(),
): Promise<Credential | null> {
  const revoked = await mutate<never>(kv, id, (c) => ({ ...c, revokedAt: c.revokedAt ?? now }));
  forgetVerified(id);
  return revoked;
}

const verified = new Map<string, { credentialId: string; secretId: string; until: number }>();
const VERIFIED_TTL_MS = 5 * 60_000;

function forgetVerified(credentialId: string) {
  for (const [k, v] of verified) if (v.credentialId === credentialId) verified.delete(k);
}

/**
 * Derivations under way, by a digest of what decides their outcome (the username, the ids of the
 * secrets the record held, the secret typed): logins that arrive together with the same secret
 * (an app opening twenty connections at once, or twenty sessions of one guess) wait on one
 * derivation instead of paying 32 MiB and tens of ms each. The value is the id of the secret that
 * matched, or null.
 */
const inFlight = new Map<string, Promise<string | null>>();

/**
 * The id of `credential`'s secret that `secret` is, or null. Every failure pays exactly
 * MAX_SECRETS scrypt derivations, whether the user is unknown or has one or two secrets: instead
 * of failing after as many hashes as the credential happens to hold, which would time a wrong
 * password apart from an unknown user, the difference is made up with hashes of a dummy secret.
 */
async function matchingSecret(credential: Credential | null, secret: string) {
  const secrets = credential?.secrets ?? [];
  let hashed = 0;
  for (const s of secrets) {
    hashed++;
    if (await verifySecret(secret, s.hash)) return s.id;
  }
  for (; hashed < MAX_SECRETS; hashed++) await verifySecret(secret, await dummy());
  return null;
}

/**
 * The record `username` logs in as, or null. A username is its credential's id
 * (createCredential), so the index and the record are asked for in one store read, not one after
 * the other; an index naming another id would cost a second read.
 */
async function credentialOfUser(
  kv: Deno.Kv,
  username: string,
  read?: Deno.KvEntryMaybe<unknown>[],
): Promise<Credential | null> {
  const [byUser, record] = (read?.length === 2 ? read : await kv.getMany(loginKeys(username))) as [
    Deno.KvEntryMaybe<string>,
    Deno.KvEntryMaybe<Credential>,
  ];
  const id = byUser.value;
  if (!id) return null;
  return id === username ? credentialFrom(record.value) : await getCredential(kv, id);
}

/**
 * What verifyLogin reads of `username`, in this order: a caller that reads other keys first (the
 * login's lockouts) reads these in the same store read and passes their entries on.
 */
export function loginKeys(username: string): Deno.KvKey[] {
  return [keys.credentialByUser(username), keys.credential(username)];
}

/**
 * Checks username + secret (constant work on failure: see matchingSecret). Concurrent checks of
 * the same username, secret and record share one derivation, failures included, so a joined
 * failure takes as long as the derivation it joined whether the user exists or not. `read`: the
 * entries of loginKeys(username), read just before by the caller; absent, they are read here.
 */
export async function verifyLogin(
  kv: Deno.Kv,
  username: string,
  secret: string,
  now = Date.now(),
  read?: Deno.KvEntryMaybe<unknown>[],
): Promise<Credential | null> {
  const record = await credentialOfUser(kv, username, read);
  const credential = record && record.revokedAt === null && record.secrets.length > 0
    ? record
    : null;
  const cacheKey = credential ? sha256(`${credential.id}\0${secret}`) : "";
  const cached = credential ? verified.get(cacheKey) : undefined;
  if (
    credential && cached && cached.until > now &&
    credential.secrets.some((s) => s.id === cached.secretId)
  ) {
    return credential;
  }
  const state = credential?.secrets.map((s) => s.id).join(",") ?? "-";
  const flightKey = sha256(`${username}\0${state}\0${secret}`);
  let flight = inFlight.get(flightKey);
  if (!flight) {
    flight = matchingSecret(credential, secret).finally(() => inFlight.delete(flightKey));
    inFlight.set(flightKey, flight);
  }
  const secretId = await flight;
  if (!credential || secretId === null) return null;
  verified.set(cacheKey, { credentialId: credential.id, secretId, until: now + VERIFIED_TTL_MS });
  if (verified.size > 10_000) verified.delete(verified.keys().next().value!);
  return credential;
}

/** Marks use without a write per login: at most once a minute per credential. */
export async function touchCredential(kv: Deno.Kv, credential: Credential, now = Date.now()) {
  if (credential.lastUsedAt !== null && now - credential.lastUsedAt < 60_000) return;
  const entry = await kv.get<Credential>(keys.credential(credential.id));
  if (!entry.value) return;
  await kv.atomic().check(entry).set(keys.credential(credential.id), {
    ...entry.value,
    lastUsedAt: now,
  }).commit();
}

let dummyHash: Promise<SecretHash> | undefined;
function dummy(): Promise<SecretHash> {
  return dummyHash ??= hashSecret("postern-dummy-" + randomToken(8));
}

/**
 * Makes the dummy hash that failed logins are checked against, at start-up: made lazily, the
 * first unknown user would pay one derivation more than any other failure.
 */
export async function prepareLoginChecks(): Promise<void> {
  await dummy();
}

/** An API key alone (HTTP bearer, XOAUTH2 token): the credential id is inside the key. */
export function verifyApiKey(kv: Deno.Kv, key: string, now = Date.now()) {
  const m = /^pst_([a-z0-9]{16})_[A-Za-z0-9_-]{32}$/.exec(key);
  return verifyLogin(kv, m ? `cr_${m[1]}` : "cr_unknown", key, now);
}
