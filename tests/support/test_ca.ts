/**
 * A certificate authority made by the test, and server certificates it signs: valid, expired,
 * for the wrong name, and self-signed ones that no CA vouches for. The relay trusts the CA
 * through POSTERN_CA_FILE (the file this writes).
 *
 * @module
 */
import { generate } from "selfsigned";
import type { TestCertificate } from "./tls_certificate.ts";

export interface TestCa {
  cert: string;
  key: string;
  /** A PEM file holding only the CA certificate, for POSTERN_CA_FILE. */
  file: string;
  /** A certificate for `names`, signed by this CA (leaf then CA in `cert`). */
  issue(names: string[], options?: { expired?: boolean }): Promise<TestCertificate>;
}

const EC = { keyType: "ec", algorithm: "sha256" } as const;

function serverExtensions(names: string[]) {
  return [
    { name: "basicConstraints" as const, cA: false },
    { name: "keyUsage" as const, digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage" as const, serverAuth: true },
    {
      name: "subjectAltName" as const,
      altNames: names.map((value) =>
        /^[\d.]+$/.test(value) ? { type: 7 as const, ip: value } : { type: 2 as const, value }
      ),
    },
  ];
}

export async function createTestCa(): Promise<TestCa> {
  const ca = await generate([{ name: "commonName", value: "Postern Test CA" }], {
    ...EC,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true },
    ],
  });
  const dir = await Deno.makeTempDir({ prefix: "postern-ca-" });
  const file = `${dir}/ca.pem`;
  await Deno.writeTextFile(file, ca.cert);
  return {
    cert: ca.cert,
    key: ca.private,
    file,
    async issue(names, options = {}) {
      const day = 86_400_000;
      const pems = await generate([{ name: "commonName", value: names[0]! }], {
        ...EC,
        ca: { key: ca.private, cert: ca.cert },
        ...(options.expired
          ? {
            notBeforeDate: new Date(Date.now() - 30 * day),
            notAfterDate: new Date(Date.now() - day),
          }
          : {}),
        extensions: serverExtensions(names),
      });
      return { key: pems.private, cert: pems.cert + ca.cert };
    },
  };
}

/** A certificate for `names` that signs itself: no CA vouches for it. */
export async function selfSignedCertificate(names: string[]): Promise<TestCertificate> {
  const pems = await generate([{ name: "commonName", value: names[0]! }], {
    ...EC,
    extensions: serverExtensions(names),
  });
  return { key: pems.private, cert: pems.cert };
}
