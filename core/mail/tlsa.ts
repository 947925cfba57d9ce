/**
 * TLSA lookups for DANE (RFC 7672 §2.2): asked of the resolver trusted to validate DNSSEC
 * (POSTERN_DNSSEC_RESOLVER) through the stub client with DNSSEC requested; an answer counts only
 * when the resolver sets the AD bit in its reply, i.e. it validated the records. Any other
 * answer (unsigned, NXDOMAIN, a failure) means no usable TLSA, so delivery goes on as without
 * DANE.
 *
 * @module
 */
import { dnsQuery, type NameServer } from "./dns_client.ts";
import type { TlsaRecord } from "../policy/dane.ts";

interface TlsaData {
  usage: number;
  selector: number;
  matchingType: number;
  certificate: Uint8Array;
}

/** TLSA records of `name` if the resolver validated them; null otherwise. */
export function dnssecTlsaLookup(
  server: NameServer,
  timeoutMs = 5_000,
): (name: string) => Promise<TlsaRecord[] | null> {
  return async (name) => {
    const res = await dnsQuery(server, name, "TLSA", { timeoutMs, dnssec: true });
    if (res.rcode !== "NOERROR" || res.authenticated !== true) return null;
    const records = res.answers.filter((a) => a.type === "TLSA" && a.data).map((a) => {
      const data = a.data as TlsaData;
      return {
        usage: data.usage,
        selector: data.selector,
        matchingType: data.matchingType,
        data: new Uint8Array(data.certificate),
      };
    });
    return records.length > 0 ? records : null;
  };
}
