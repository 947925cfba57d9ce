/**
 * The DNS records a sending domain publishes for Postern, and how a published record compares
 * with the expected one. Pure: the TXT lookup is passed in (core/mail/txt.ts in production).
 *
 * - DKIM (RFC 6376 §3.6.2): `<selector>._domainkey.<domain>` TXT `v=DKIM1; k=…; p=…`. Required:
 *   a domain signs only once the records of its active keys are published.
 * - SPF (RFC 7208): one `v=spf1` TXT at the domain that includes Postern's SPF name. Suggested.
 * - DMARC (RFC 7489): a `v=DMARC1` TXT at `_dmarc.<domain>`, any policy. Suggested.
 *
 * @module
 */
import { type DkimAlgorithm, dkimTxtValue } from "./dkim.ts";

export type RecordPurpose = "dkim" | "spf" | "dmarc";
export type RecordState = "verified" | "missing" | "mismatch";

export interface DnsRecord {
  purpose: RecordPurpose;
  type: "TXT";
  name: string;
  value: string;
  /** Whether the domain counts as verified only once this record is. */
  required: boolean;
  /** DKIM records: the selector they publish. */
  selector?: string;
}

/** The TXT strings published at a name, each record's strings joined; [] when there are none. */
export type TxtLookup = (name: string) => Promise<string[]>;

export function dkimRecord(
  domain: string,
  key: { selector: string; algorithm: DkimAlgorithm; publicKey: string },
): DnsRecord {
  return {
    purpose: "dkim",
    type: "TXT",
    name: `${key.selector}._domainkey.${domain}`,
    value: dkimTxtValue(key.algorithm, key.publicKey),
    required: true,
    selector: key.selector,
  };
}

export function spfRecord(domain: string, include: string): DnsRecord {
  return {
    purpose: "spf",
    type: "TXT",
    name: domain,
    value: `v=spf1 include:${include} ~all`,
    required: false,
  };
}

export function dmarcRecord(domain: string): DnsRecord {
  return {
    purpose: "dmarc",
    type: "TXT",
    name: `_dmarc.${domain}`,
    value: "v=DMARC1; p=none; adkim=r; aspf=r",
    required: false,
  };
}

/** RFC 6376 §3.2 tag=value list, tag names lower-cased, whitespace inside values removed. */
function tags(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ""));
  }
  return out;
}

/** How the records found at `record.name` compare with the expected one. */
export function compareRecord(
  record: DnsRecord,
  found: readonly string[],
  options: { spfInclude: string },
): RecordState {
  switch (record.purpose) {
    case "dkim": {
      const want = tags(record.value);
      const keys = found.map(tags).filter((t) => t.has("p") || t.get("v") === "DKIM1");
      if (keys.length === 0) return "missing";
      const same = keys.some((t) =>
        t.get("p") === want.get("p") && (t.get("k") ?? "rsa") === want.get("k")
      );
      return same ? "verified" : "mismatch";
    }
    case "spf": {
      const spf = found.filter((t) => /^v=spf1(\s|$)/i.test(t.trim()));
      if (spf.length === 0) return "missing";
      // RFC 7208 §4.5: more than one SPF record is a permanent error.
      if (spf.length > 1) return "mismatch";
      const include = `include:${options.spfInclude}`.toLowerCase();
      const terms = spf[0]!.trim().toLowerCase().split(/\s+/);
      return terms.some((t) => t.replace(/^[+~?]/, "") === include) ? "verified" : "mismatch";
    }
    case "dmarc": {
      const dmarc = found.filter((t) => /^v\s*=\s*DMARC1\s*(;|$)/.test(t.trim()));
      if (dmarc.length === 0) return "missing";
      return dmarc.length === 1 ? "verified" : "mismatch";
    }
  }
}
