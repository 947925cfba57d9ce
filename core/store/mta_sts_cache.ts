/** The MTA-STS policy cache (RFC 8461 §3.3): a domain's last good policy until its max_age. */
import { keys } from "./keys.ts";
import type { StsPolicy } from "../policy/mta_sts.ts";

export interface CachedStsPolicy {
  /** The `_mta-sts` TXT id the policy was fetched for. */
  id: string;
  policy: StsPolicy;
  fetchedAt: number;
  expiresAt: number;
}

export async function getStsPolicy(kv: Deno.Kv, domain: string): Promise<CachedStsPolicy | null> {
  return (await kv.get<CachedStsPolicy>(keys.mtaSts(domain))).value;
}

export async function putStsPolicy(
  kv: Deno.Kv,
  domain: string,
  entry: CachedStsPolicy,
): Promise<void> {
  // Gone from KV when it may no longer be used, so stale policies do not pile up.
  await kv.set(keys.mtaSts(domain), entry, {
    expireIn: Math.max(1000, entry.expiresAt - entry.fetchedAt),
  });
}
