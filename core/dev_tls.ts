/**
 * A self-signed certificate for first start, so STARTTLS and port 465 work out of the box. It
 * names the relay's hostname, `localhost`, 127.0.0.1 and ::1 (some clients refuse a certificate
 * for an IP address, others one without the name they dialled), and is made again when the
 * hostname changes or it is within 30 days of expiry (a certificate made before it switched to
 * ECDSA stays in use until then, so clients that trust it keep trusting it). Production sets
 * POSTERN_TLS_CERT / POSTERN_TLS_KEY.
 */
import selfsigned from "selfsigned";
import { checkTlsPair } from "./tls_pair.ts";

const RENEW_BEFORE_MS = 30 * 86_400_000;

export async function loadOrCreateDevCertificate(
  dataDir: string,
  hostname: string,
  now: number,
): Promise<{ certPath: string; keyPath: string; created: boolean }> {
  const certPath = `${dataDir}/dev-cert.pem`;
  const keyPath = `${dataDir}/dev-key.pem`;
  try {
    const pair = {
      cert: await Deno.readTextFile(certPath),
      key: await Deno.readTextFile(keyPath),
    };
    const facts = checkTlsPair(pair, { cert: certPath, key: keyPath }, now + RENEW_BEFORE_MS);
    if (facts.names.includes(hostname)) return { certPath, keyPath, created: false };
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) throw err;
    // Missing, unreadable as a pair, or about to expire: made anew below.
  }
  const names = [...new Set([hostname, "localhost"])];
  const pems = await selfsigned.generate(
    [{ name: "commonName", value: hostname }],
    {
      notAfterDate: new Date(now + 825 * 86_400_000),
      // ECDSA P-256: a STARTTLS handshake signs with the key, and on Deno's TLS a P-256
      // signature costs a fraction of an RSA-2048 one (the submit bench's relay CPU per
      // connection-per-message). Every client in the README's table takes it.
      keyType: "ec",
      curve: "P-256",
      // selfsigned defaults to SHA-1, which rustls and OpenSSL 3 clients refuse outright.
      algorithm: "sha256",
      extensions: [{
        name: "subjectAltName",
        altNames: [
          ...names.map((value) => ({ type: 2, value })),
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      }],
    } as Parameters<typeof selfsigned.generate>[1],
  );
  await Deno.writeTextFile(keyPath, pems.private, { mode: 0o600 });
  await Deno.writeTextFile(certPath, pems.cert);
  return { certPath, keyPath, created: true };
}
