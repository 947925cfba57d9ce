/**
 * Leases: exactly one node works a destination at a time. A lease is a key holding its owner and
 * expiry, taken and renewed with a versionstamp check; a dead node's lease simply runs out.
 */
export interface Lease {
  owner: string;
  until: number;
}

export async function acquireLease(
  kv: Deno.Kv,
  key: Deno.KvKey,
  owner: string,
  ttlMs: number,
  now = Date.now(),
): Promise<boolean> {
  const entry = await kv.get<Lease>(key);
  if (entry.value && entry.value.owner !== owner && entry.value.until > now) return false;
  const res = await kv.atomic().check(entry).set(key, { owner, until: now + ttlMs }).commit();
  return res.ok;
}

export async function releaseLease(kv: Deno.Kv, key: Deno.KvKey, owner: string) {
  const entry = await kv.get<Lease>(key);
  if (entry.value?.owner !== owner) return;
  await kv.atomic().check(entry).delete(key).commit();
}
