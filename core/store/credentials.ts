/**
 * SMTP/API credentials. The secret is shown once at creation; the store keeps an scrypt hash.
 * A successful verification is remembered briefly (keyed by a digest of the secret) so apps that
 * open a connection per message do not pay scrypt each time; the record itself is re-read on
 * every login, so revocation takes effect at once.
 */
import { keys } from "./keys.ts";
import { hashSecret, randomToken, type SecretHash, sha256, verifySecret } from "../auth/secrets.ts";
import { shortId } from "../ids.ts";

export interface CredentialSecret {
  id: string;
  hash: SecretHash;
  createdAt: number;
}

export interface Credential {
  id: string;
  account: string;
  name: string;
  username: string;
  secrets: CredentialSecret[];
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export type PublicCredential = Omit<Credential, "secrets"> & {
  secrets: { id: string; createdAt: number }[];
};

export const KEY_PREFIX = "pst_";

export function publicView(c: Credential): PublicCredential {
  return { ...c, secrets: c.secrets.map(({ id, createdAt }) => ({ id, createdAt })) };
}

export async function createCredential(
  kv: Deno.Kv,
  input: { account: string; name: string; now?: number },
): Promise<{ credential: Credential; password: string }> {
  const now = input.now ?? Date.now();
  const id = shortId("cr_", 16);
  // The key names its credential, so it also works alone as an HTTP bearer key.
  const password = `${KEY_PREFIX}${id.slice(3)}_${randomToken(24)}`;
  const credential: Credential = {
    id,
    account: input.account,
    name: input.name,
    username: id,
    secrets: [{ id: shortId("sk_", 8), hash: await hashSecret(password), createdAt: now }],
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
    if (e.value.account === account) out.push(e.value);
  }
  return out;
}

export async function getCredential(kv: Deno.Kv, id: string): Promise<Credential | null> {
  return (await kv.get<Credential>(keys.credential(id))).value;
}

export async function revokeCredential(
  kv: Deno.Kv,
  id: string,
  now = Date.now(),
): Promise<Credential | null> {
  const entry = await kv.get<Credential>(keys.credential(id));
  if (!entry.value) return null;
  const revoked = { ...entry.value, revokedAt: entry.value.revokedAt ?? now };
  await kv.set(keys.credential(id), revoked);
  forgetVerified(id);
  return revoked;
}

const verified = new Map<string, { credentialId: string; secretId: string; until: number }>();
const VERIFIED_TTL_MS = 5 * 60_000;

function forgetVerified(credentialId: string) {
  for (const [k, v] of verified) if (v.credentialId === credentialId) verified.delete(k);
}

/**
 * Checks username + secret. Unknown users still pay one scrypt so replies and timing do not tell
 * an unknown user from a wrong password.
 */
export async function verifyLogin(
  kv: Deno.Kv,
  username: string,
  secret: string,
  now = Date.now(),
): Promise<Credential | null> {
  const id = (await kv.get<string>(keys.credentialByUser(username))).value;
  const credential = id ? await getCredential(kv, id) : null;
  if (!credential || credential.revokedAt !== null) {
    await verifySecret(secret, await dummy());
    return null;
  }
  const cacheKey = sha256(`${credential.id}\0${secret}`);
  const cached = verified.get(cacheKey);
  if (
    cached && cached.until > now && credential.secrets.some((s) => s.id === cached.secretId)
  ) {
    return credential;
  }
  for (const s of credential.secrets) {
    if (await verifySecret(secret, s.hash)) {
      verified.set(cacheKey, {
        credentialId: credential.id,
        secretId: s.id,
        until: now + VERIFIED_TTL_MS,
      });
      if (verified.size > 10_000) verified.delete(verified.keys().next().value!);
      return credential;
    }
  }
  return null;
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

/** An API key alone (HTTP bearer, XOAUTH2 token): the credential id is inside the key. */
export function verifyApiKey(kv: Deno.Kv, key: string, now = Date.now()) {
  const m = /^pst_([a-z0-9]{16})_[A-Za-z0-9_-]{32}$/.exec(key);
  return verifyLogin(kv, m ? `cr_${m[1]}` : "cr_unknown", key, now);
}
