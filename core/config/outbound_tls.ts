/**
 * Outbound TLS settings (README "Outbound TLS"): the trust store, the port MTA-STS policies are
 * fetched from, and the DNSSEC-validating resolver whose AD bit DANE believes.
 *
 * @module
 */
import { z } from "zod";
import { dnsServer } from "./fields.ts";

const port = z.coerce.number().int().min(1).max(65535);

export const OUTBOUND_TLS_FIELDS = {
  /** PEM file of trusted roots for `verify`, MTA-STS and smarthosts; unset: the system's. */
  caFile: z.string().min(1).optional(),
  /** Port of https://mta-sts.<domain>/ (RFC 8461 says 443; tests point it elsewhere). */
  mtaStsPort: port.default(443),
  /** A resolver trusted to validate DNSSEC: TLSA answers count only with its AD bit. */
  dnssecResolver: dnsServer.optional(),
};

export const OUTBOUND_TLS_ENV_NAMES = {
  POSTERN_CA_FILE: "caFile",
  POSTERN_MTA_STS_PORT: "mtaStsPort",
  POSTERN_DNSSEC_RESOLVER: "dnssecResolver",
} as const;

/** The trust store's certificates, or undefined for the system roots. */
export function readCaFile(path: string | undefined): string[] | undefined {
  if (!path) return undefined;
  const pem = Deno.readTextFileSync(path);
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!certs) throw new Error(`${path} holds no PEM certificate`);
  return certs;
}
