/**
 * A self-signed certificate for first start, so STARTTLS and port 465 work out of the box.
 * Production sets POSTERN_TLS_CERT / POSTERN_TLS_KEY.
 */
import selfsigned from "selfsigned";

export async function loadOrCreateDevCertificate(
  dataDir: string,
  hostname: string,
): Promise<{ cert: string; key: string; generated: boolean }> {
  const certPath = `${dataDir}/dev-cert.pem`;
  const keyPath = `${dataDir}/dev-key.pem`;
  try {
    return {
      cert: await Deno.readTextFile(certPath),
      key: await Deno.readTextFile(keyPath),
      generated: false,
    };
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const pems = await selfsigned.generate(
    [{ name: "commonName", value: hostname }],
    {
      days: 825,
      keySize: 2048,
      // selfsigned defaults to SHA-1, which rustls and OpenSSL 3 clients refuse outright.
      algorithm: "sha256",
      extensions: [{
        name: "subjectAltName",
        altNames: [{ type: 2, value: hostname }, { type: 2, value: "localhost" }, {
          type: 7,
          ip: "127.0.0.1",
        }],
      }],
    } as Parameters<typeof selfsigned.generate>[1],
  );
  await Deno.writeTextFile(keyPath, pems.private, { mode: 0o600 });
  await Deno.writeTextFile(certPath, pems.cert);
  return { cert: pems.cert, key: pems.private, generated: true };
}
