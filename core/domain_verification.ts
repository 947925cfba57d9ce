/**
 * Which DNS records a sending domain should publish, and the verification that looks them up
 * (through the injected TXT lookup, i.e. POSTERN_DNS in production) and records the result.
 *
 * @module
 */
import {
  compareRecord,
  dkimRecord,
  dmarcRecord,
  type DnsRecord,
  type RecordState,
  spfRecord,
  type TxtLookup,
} from "./mail/dns_records.ts";
import {
  getDomain,
  type RecordResult,
  recordVerification,
  type SendingDomain,
} from "./store/domains.ts";

export interface CheckedRecord extends DnsRecord {
  state: RecordState;
  /** What the lookup found at the name (TXT strings joined per record). */
  found: string[];
}

/** The records to publish: DKIM for active and pending keys, then SPF and DMARC suggestions. */
export function domainRecords(domain: SendingDomain, spfInclude: string): DnsRecord[] {
  return [
    ...domain.keys.filter((k) => k.status !== "retired").map((k) => dkimRecord(domain.name, k)),
    spfRecord(domain.name, spfInclude),
    dmarcRecord(domain.name),
  ];
}

/**
 * Looks up every record of domain `id`, stores the outcome (which may finish a key rotation)
 * and returns the updated domain with each record's state; null when the domain is unknown.
 * A failing lookup (timeout, SERVFAIL) throws: it says nothing about the records.
 */
export async function verifyDomain(
  kv: Deno.Kv,
  id: string,
  options: { lookup: TxtLookup; spfInclude: string; now?: number },
): Promise<{ domain: SendingDomain; records: CheckedRecord[] } | null> {
  const before = await getDomain(kv, id);
  if (!before) return null;
  const checked: CheckedRecord[] = await Promise.all(
    domainRecords(before, options.spfInclude).map(async (record) => {
      const found = await options.lookup(record.name);
      const state = compareRecord(record, found, { spfInclude: options.spfInclude });
      return { ...record, state, found };
    }),
  );
  const results: RecordResult[] = checked.map((r) => ({
    purpose: r.purpose,
    name: r.name,
    state: r.state,
    ...(r.selector ? { selector: r.selector } : {}),
  }));
  const domain = await recordVerification(kv, id, results, options.now ?? Date.now());
  return domain ? { domain, records: checked } : null;
}
