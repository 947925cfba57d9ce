/**
 * A certificate and key checked before any listener uses them. Deno's TLS takes a mismatched,
 * swapped or expired pair without complaint and then fails every handshake ("unsupported
 * protocol" at the client), so start-up and reload check the pair here and name the setting.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";

export interface TlsPair {
  cert: string;
  key: string;
}

/** Where the pair came from: the setting (or file) each half is named by in errors. */
export interface TlsOrigin {
  cert: string;
  key: string;
}

export interface CertificateFacts {
  /** The names and addresses the certificate covers (subjectAltName, else its CN). */
  names: string[];
  notAfter: Date;
}

/** One line naming the setting and what is wrong with it. */
export class TlsPairError extends Error {
  override name = "TlsPairError";
}

const SWAPPED = "(are POSTERN_TLS_CERT and POSTERN_TLS_KEY swapped?)";

export function checkTlsPair(pair: TlsPair, origin: TlsOrigin, now: number): CertificateFacts {
  const fail = (setting: string, why: string) => new TlsPairError(`${setting}: ${why}`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pair.cert);
  } catch {
    throw fail(
      origin.cert,
      /PRIVATE KEY-----/.test(pair.cert)
        ? `holds a private key, not a certificate ${SWAPPED}`
        : "is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
    );
  }
  let key;
  try {
    key = createPrivateKey(pair.key);
  } catch (err) {
    throw fail(
      origin.key,
      /BEGIN CERTIFICATE-----/.test(pair.key)
        ? `holds a certificate, not a private key ${SWAPPED}`
        : /ENCRYPTED/.test(pair.key)
        ? "the private key is encrypted; give it unencrypted (readable by this user only)"
        : `is not a PEM private key (${(err as Error).message})`,
    );
  }
  if (!x509.checkPrivateKey(key)) {
    throw fail(origin.key, `the private key does not match the certificate in ${origin.cert}`);
  }
  if (x509.validToDate.getTime() <= now) {
    throw fail(origin.cert, `the certificate expired on ${x509.validToDate.toISOString()}`);
  }
  // A certificate made this second may start on the next one; clocks also differ a little.
  if (x509.validFromDate.getTime() > now + 300_000) {
    throw fail(
      origin.cert,
      `the certificate is valid only from ${x509.validFromDate.toISOString()}`,
    );
  }
  return { names: certificateNames(x509), notAfter: x509.validToDate };
}

function certificateNames(x509: X509Certificate): string[] {
  const alt = x509.subjectAltName;
  if (alt) {
    return alt.split(/,\s*/).map((entry) => entry.replace(/^(DNS|IP Address):/, "").trim())
      .filter(Boolean);
  }
  const cn = /CN=([^\n,]+)/.exec(x509.subject)?.[1];
  return cn ? [cn] : [];
}
