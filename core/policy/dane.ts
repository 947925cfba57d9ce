/**
 * DANE for SMTP (RFC 7672): which TLSA records are usable and whether a peer's certificate
 * chain matches them. Only DANE-TA(2) and DANE-EE(3) are usable for SMTP (§3.1.3); PKIX-TA(0)
 * and PKIX-EE(1) are not.
 *
 * @module
 */
import { createHash, type X509Certificate } from "node:crypto";
import { Buffer } from "node:buffer";

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  /** The certificate association data. */
  data: Uint8Array;
}

/** The records a client may use: usage 2 or 3, selector 0 or 1, matching type 0, 1 or 2. */
export function usableTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  return records.filter((r) =>
    (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) &&
    r.matchingType >= 0 && r.matchingType <= 2
  );
}

function selected(cert: X509Certificate, selector: number): Uint8Array {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: "spki", format: "der" });
}

function associates(record: TlsaRecord, cert: X509Certificate): boolean {
  const bytes = selected(cert, record.selector);
  const digest = record.matchingType === 0
    ? Buffer.from(bytes)
    : createHash(record.matchingType === 1 ? "sha256" : "sha512").update(bytes).digest();
  return Buffer.from(record.data).equals(digest);
}

export type DaneResult = { ok: true; usage: 2 | 3 } | { ok: false; reason: string };

/**
 * Whether the presented chain (leaf first) matches the usable records. DANE-EE pins the leaf
 * and checks neither name nor dates (§3.1.1); DANE-TA pins an issuer in the chain, which must
 * really have signed down to the leaf, and the leaf must name one of `names` (§3.1.2).
 */
export function matchTlsa(
  records: readonly TlsaRecord[],
  chain: readonly X509Certificate[],
  names: readonly string[],
): DaneResult {
  const usable = usableTlsa(records);
  const leaf = chain[0];
  if (!leaf) return { ok: false, reason: "the server presented no certificate" };
  if (usable.some((r) => r.usage === 3 && associates(r, leaf))) return { ok: true, usage: 3 };
  for (const record of usable.filter((r) => r.usage === 2)) {
    const at = chain.findIndex((c) => associates(record, c));
    if (at < 0) continue;
    let signed = true;
    for (let i = 0; i < at && signed; i++) signed = chain[i]!.verify(chain[i + 1]!.publicKey);
    if (at === 0) signed = leaf.verify(leaf.publicKey);
    if (!signed) continue;
    if (!names.some((n) => leaf.checkHost(n) !== undefined)) {
      return { ok: false, reason: `the certificate names none of ${names.join(", ")}` };
    }
    return { ok: true, usage: 2 };
  }
  return { ok: false, reason: "no TLSA record matches the certificate chain" };
}
