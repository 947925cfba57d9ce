/**
 * A self-signed certificate for loopback test servers.
 *
 * @module
 */

import { generate } from "selfsigned";
import { X509Certificate } from "node:crypto";
import { runCommand } from "./run_command.ts";

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

/** A fresh self-signed certificate for `names`, valid between the dates given (default: a year from now). */
export async function certificateFor(
  names: string[],
  validity: { notBefore?: Date; notAfter?: Date } = {},
): Promise<TestCertificate> {
  const pems = await generate([{ name: "commonName", value: names[0] ?? "localhost" }], {
    keySize: 2048,
    algorithm: "sha256",
    ...(validity.notBefore ? { notBeforeDate: validity.notBefore } : {}),
    ...(validity.notAfter ? { notAfterDate: validity.notAfter } : {}),
    extensions: [{
      name: "subjectAltName",
      altNames: names.map((value) =>
        /^[\d.]+$|:/.test(value) ? { type: 7, ip: value } : { type: 2, value }
      ),
    }],
  });
  return { key: pems.private, cert: pems.cert };
}

/**
 * The SHA-256 fingerprint of the certificate a relay presents: over STARTTLS on `port`, or
 * implicit TLS with `implicit`. openssl s_client is the client, as an operator would check.
 */
export async function presentedFingerprint(
  port: number,
  mode: "starttls" | "implicit",
): Promise<string> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"];
  if (mode === "starttls") args.push("-starttls", "smtp");
  const client = await runCommand("openssl", args, { stdin: "QUIT\r\n", timeoutMs: 20_000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(client.stdout);
  if (!pem) throw new Error(`no certificate from ${mode} on ${port}: ${client.stderr}`);
  return fingerprintOf(pem[0]);
}

/** The SHA-256 fingerprint of a PEM certificate, as `openssl x509 -fingerprint` prints it. */
export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
