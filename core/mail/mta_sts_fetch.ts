/**
 * Fetching a domain's MTA-STS policy (RFC 8461 §3.3): GET
 * https://mta-sts.<domain>/.well-known/mta-sts.txt with a verified certificate for that name,
 * no redirects, at most 64 KiB, within a deadline. The name is resolved through Postern's own
 * resolver (POSTERN_DNS), never behind its back (core/mail/https_by_address.ts).
 *
 * @module
 */
import { parseStsPolicy, type StsPolicy } from "../policy/mta_sts.ts";
import { httpsByAddress } from "./https_by_address.ts";

export interface StsFetchOptions {
  /** A/AAAA lookup of mta-sts.<domain> through the configured resolver. */
  addresses(name: string): Promise<string[]>;
  /** 443, or POSTERN_MTA_STS_PORT. */
  port: number;
  /** Trusted roots (POSTERN_CA_FILE); unset: the system's. */
  ca?: string[] | undefined;
  /** @default 10000 */
  timeoutMs?: number;
}

export type StsFetchResult = { ok: true; policy: StsPolicy } | { ok: false; reason: string };

export async function fetchStsPolicy(
  domain: string,
  options: StsFetchOptions,
): Promise<StsFetchResult> {
  const host = `mta-sts.${domain}`;
  let addresses: string[];
  try {
    addresses = await options.addresses(host);
  } catch (err) {
    return { ok: false, reason: `${host} did not resolve: ${(err as Error).message}` };
  }
  if (addresses.length === 0) return { ok: false, reason: `${host} has no address` };
  let last = "";
  for (const address of addresses) {
    const res = await httpsByAddress({
      address,
      host,
      port: options.port,
      path: "/.well-known/mta-sts.txt",
      ca: options.ca,
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    });
    if (!res.ok) {
      last = res.reason;
      continue;
    }
    // RFC 8461 §3.3: only a 200 counts; redirects are not followed.
    if (res.status !== 200) return { ok: false, reason: `https://${host}/ answered ${res.status}` };
    const parsed = parseStsPolicy(res.body);
    return parsed.ok ? parsed : { ok: false, reason: `policy of ${domain}: ${parsed.reason}` };
  }
  return { ok: false, reason: last };
}
