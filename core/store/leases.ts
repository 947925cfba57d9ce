/**
 * Leases: exactly one node works a destination at a time. A lease is a key holding its owner and
 * expiry, taken and renewed with a versionstamp check; a dead node's lease simply runs out.
 */
import { keys } from "./keys.ts";

export interface Lease {
  owner: string;
  until: number;
}

/** The outcome of a lease attempt: held (until `until`), or held by `owner` until `until`. */
export type LeaseAttempt = { ok: true; until: number } | {
  ok: false;
  owner: string;
  until: number;
};

export async function tryLease(
  kv: Deno.Kv,
  key: Deno.KvKey,
  owner: string,
  ttlMs: number,
  now = Date.now(),
): Promise<LeaseAttempt> {
  const entry = await kv.get<Lease>(key);
  if (entry.value && entry.value.owner !== owner && entry.value.until > now) {
    return { ok: false, owner: entry.value.owner, until: entry.value.until };
  }
  const until = now + ttlMs;
  const res = await kv.atomic().check(entry).set(key, { owner, until }).commit();
  // Lost the race for a free lease: whoever won holds it for a whole TTL.
  return res.ok ? { ok: true, until } : { ok: false, owner: "", until };
}

export async function acquireLease(
  kv: Deno.Kv,
  key: Deno.KvKey,
  owner: string,
  ttlMs: number,
  now = Date.now(),
): Promise<boolean> {
  return (await tryLease(kv, key, owner, ttlMs, now)).ok;
}

export async function releaseLease(kv: Deno.Kv, key: Deno.KvKey, owner: string) {
  const entry = await kv.get<Lease>(key);
  if (entry.value?.owner !== owner) return;
  await kv.atomic().check(entry).delete(key).commit();
}

/** The lease on a site (one node shapes a site's traffic at a time). */
export function trySiteLease(
  kv: Deno.Kv,
  site: string,
  owner: string,
  ttlMs: number,
  now = Date.now(),
): Promise<LeaseAttempt> {
  return tryLease(kv, keys.siteLease(site), owner, ttlMs, now);
}

export function releaseSiteLease(kv: Deno.Kv, site: string, owner: string): Promise<void> {
  return releaseLease(kv, keys.siteLease(site), owner);
}

/** The lease on a webhook endpoint (one node delivers its events at a time). */
export function tryWebhookLease(
  kv: Deno.Kv,
  id: string,
  owner: string,
  ttlMs: number,
  now = Date.now(),
): Promise<LeaseAttempt> {
  return tryLease(kv, keys.webhookLease(id), owner, ttlMs, now);
}

export function releaseWebhookLease(kv: Deno.Kv, id: string, owner: string): Promise<void> {
  return releaseLease(kv, keys.webhookLease(id), owner);
}

/** Every site lease and who holds it (for the nodes API); expired ones are left out. */
export async function listSiteLeases(
  kv: Deno.Kv,
  now = Date.now(),
): Promise<{ site: string; lease: Lease }[]> {
  const out: { site: string; lease: Lease }[] = [];
  for await (const e of kv.list<Lease>({ prefix: keys.siteLeasePrefix() })) {
    if (e.value.until > now) out.push({ site: e.key[2] as string, lease: e.value });
  }
  return out;
}
