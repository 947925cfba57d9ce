/**
 * What one outbound connection must prove about its peer, from the configured level and the
 * recipient domain's published policies. DANE beats MTA-STS where both exist (RFC 8461 §2);
 * an MTA-STS `enforce` policy upgrades `may` and `encrypt` to a verified certificate for an MX
 * host the policy lists; `testing` changes nothing but what is reported (RFC 8460).
 *
 * @module
 */
import type { TlsLevel } from "./tls_level.ts";
import { stsMxMatches, type StsPolicy } from "./mta_sts.ts";
import { type TlsaRecord, usableTlsa } from "./dane.ts";

/** Who vouched for a verified peer. */
export type VerifiedBy = "ca" | "mta-sts" | "dane";

export type PeerCheck =
  /** No STARTTLS at all. */
  | { kind: "none" }
  /** STARTTLS when offered (`required` false) or required; any certificate. */
  | { kind: "any"; required: boolean }
  /** A chain to a trusted root that names `name`. */
  | { kind: "ca"; name: string; by: "ca" | "mta-sts" }
  /** A chain matching the TLSA records, naming one of `names` for DANE-TA. */
  | { kind: "dane"; tlsa: TlsaRecord[]; names: string[] };

/** The policies that apply to one MX host (or route host). */
export interface HostPolicies {
  /** The MX or route host name. */
  name: string;
  /** The recipient domain's MTA-STS policy (MX delivery only). */
  sts?: StsPolicy | null;
  /** DNSSEC-validated TLSA records of the host (`_25._tcp.<name>`), when looked up. */
  tlsa?: TlsaRecord[] | null;
}

export type Requirement =
  | { ok: true; check: PeerCheck; policy: "sts" | "tlsa" | "none" }
  | { ok: false; reason: string; policy: "sts" | "tlsa" };

export function requirementFor(level: TlsLevel, host: HostPolicies, domain: string): Requirement {
  if (level === "none") return { ok: true, check: { kind: "none" }, policy: "none" };
  const tlsa = usableTlsa(host.tlsa ?? []);
  if (tlsa.length > 0) {
    return { ok: true, check: { kind: "dane", tlsa, names: [host.name] }, policy: "tlsa" };
  }
  const sts = host.sts;
  if (sts && sts.mode === "enforce") {
    if (!stsMxMatches(sts, host.name)) {
      return {
        ok: false,
        policy: "sts",
        reason: `MTA-STS policy of ${domain} (mode enforce) does not list MX host ${host.name}: ` +
          "no TLS session to it",
      };
    }
    return { ok: true, check: { kind: "ca", name: host.name, by: "mta-sts" }, policy: "sts" };
  }
  const policy = sts && sts.mode === "testing" ? "sts" : "none";
  if (level === "verify") {
    return { ok: true, check: { kind: "ca", name: host.name, by: "ca" }, policy };
  }
  return { ok: true, check: { kind: "any", required: level === "encrypt" }, policy };
}
