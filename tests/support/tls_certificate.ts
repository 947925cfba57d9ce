/**
 * A self-signed certificate for loopback test servers.
 *
 * @module
 */

import { generate } from "selfsigned";

/** PEM key and certificate, in the shape `node:tls` and smtp-server take. */
export interface TestCertificate {
  key: string;
  cert: string;
}

let pending: Promise<TestCertificate> | undefined;

/**
 * Returns a certificate for `localhost`, 127.0.0.1 and ::1, generated once per process:
 * RSA key generation costs tens of milliseconds, and every sink would otherwise pay it.
 *
 * Clients must skip verification (`rejectUnauthorized: false`); nothing trusts this issuer.
 */
export function loopbackCertificate(): Promise<TestCertificate> {
  pending ??= generate([{ name: "commonName", value: "localhost" }], {
    keySize: 2048,
    // SHA-1 signatures are refused by some TLS stacks even when verification is off.
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  }).then((pems) => ({ key: pems.private, cert: pems.cert }));
  return pending;
}
