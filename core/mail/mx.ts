/**
 * Where mail for a domain goes (RFC 5321 §5.1): MX hosts by preference, each resolved to its
 * addresses; no MX → the domain's own A/AAAA (implicit MX); a null MX (RFC 7505) → nowhere.
 * The resolver is injected so tests answer from a zone of their own.
 */

import { dnsQuery, type NameServer, type QueryOptions, systemNameServer } from "./dns_client.ts";
import type { DnsFailure } from "../policy/dns_outcome.ts";

export type RecordType = "MX" | "A" | "AAAA";

/**
 * Answers about names. A name with no records of the type throws NoRecordsError (NxDomainError
 * when the name does not exist at all); any other error means no answer was had (SERVFAIL,
 * REFUSED, a timeout), which is temporary.
 */
export interface Resolver {
  mx(name: string): Promise<{ exchange: string; preference: number }[]>;
  addresses(name: string, type: "A" | "AAAA"): Promise<string[]>;
}

/** Name exists but has no such record (NODATA), or does not exist at all. */
export class NoRecordsError extends Error {
  override name = "NoRecordsError";
}

/** The name does not exist (NXDOMAIN, RFC 1035 §4.1.1 RCODE 3). */
export class NxDomainError extends NoRecordsError {
  override name = "NxDomainError";
}

/** No answer: SERVFAIL, REFUSED, a timeout, a truncated or malformed response. */
export class DnsTemporaryError extends Error {
  override name = "DnsTemporaryError";
}

/**
 * A resolver that asks `nameServer` (POSTERN_DNS), or the system's first name server, with our
 * own stub client so that NXDOMAIN, NODATA and SERVFAIL stay apart.
 */
export function dnsResolver(nameServer?: NameServer, options: QueryOptions = {}): Resolver {
  const server = nameServer ?? systemNameServer();
  async function records(name: string, type: RecordType) {
    const res = await dnsQuery(server, name, type, options);
    if (res.rcode === "NXDOMAIN") throw new NxDomainError(`${type} ${name}: NXDOMAIN`);
    if (res.rcode === "FAILED") throw new DnsTemporaryError(res.reason);
    const found = res.answers.filter((a) => a.type === type);
    if (found.length === 0) throw new NoRecordsError(`${type} ${name}: no records (NODATA)`);
    return found;
  }
  return {
    mx: async (name) =>
      (await records(name, "MX")).map((a) => {
        const data = a.data as { exchange: string; preference: number };
        return { exchange: data.exchange, preference: data.preference };
      }),
    addresses: async (name, type) => (await records(name, type)).map((a) => String(a.data)),
  };
}

export interface MxHost {
  /** The MX name (or the domain itself for an implicit MX). */
  name: string;
  address: string;
  preference: number;
}

export type MxResult =
  | { ok: true; hosts: MxHost[] }
  | { ok: false; permanent: boolean; failure: DnsFailure; reason: string };

/** A name's A and AAAA addresses; `temporary` when a lookup got no answer. */
async function addressesOf(
  resolver: Resolver,
  name: string,
): Promise<{ addresses: string[]; temporary: string | null }> {
  const addresses: string[] = [];
  let temporary: string | null = null;
  for (const type of ["A", "AAAA"] as const) {
    try {
      addresses.push(...await resolver.addresses(name, type));
    } catch (err) {
      if (!(err instanceof NoRecordsError)) temporary = String((err as Error).message ?? err);
    }
  }
  return { addresses, temporary };
}

/**
 * The MX hosts of `domain` with their addresses. Permanent only when the domain does not exist
 * or publishes a null MX (core/policy/dns_outcome.ts says why); every other failure is not.
 */
export async function resolveMx(resolver: Resolver, domain: string): Promise<MxResult> {
  let records: { exchange: string; preference: number }[];
  try {
    records = await resolver.mx(domain);
  } catch (err) {
    if (err instanceof NxDomainError) {
      return {
        ok: false,
        permanent: true,
        failure: "nxdomain",
        reason: `${domain} does not exist (NXDOMAIN)`,
      };
    }
    if (!(err instanceof NoRecordsError)) {
      return {
        ok: false,
        permanent: false,
        failure: "temporary",
        reason: `MX lookup for ${domain} failed: ${(err as Error).message ?? err}`,
      };
    }
    records = []; // NODATA: the domain itself is its mail host (RFC 5321 §5.1)
  }
  const clean = records.map((r) => ({
    exchange: r.exchange.replace(/\.$/, "").toLowerCase(),
    preference: r.preference,
  }));
  const real = clean.filter((r) => r.exchange !== "");
  if (clean.length > 0 && real.length === 0) {
    return {
      ok: false,
      permanent: true,
      failure: "null_mx",
      reason: `${domain} accepts no mail (null MX, RFC 7505)`,
    };
  }
  const exchanges = real.length > 0
    ? real.sort((a, b) => a.preference - b.preference)
    : [{ exchange: domain, preference: 0 }];
  const hosts: MxHost[] = [];
  let temporary: string | null = null;
  for (const mx of exchanges) {
    const found = await addressesOf(resolver, mx.exchange);
    temporary ??= found.temporary;
    for (const address of found.addresses) {
      hosts.push({ name: mx.exchange, address, preference: mx.preference });
    }
  }
  if (hosts.length > 0) return { ok: true, hosts };
  if (temporary !== null) {
    return {
      ok: false,
      permanent: false,
      failure: "temporary",
      reason: `address lookup for ${domain}'s MX failed: ${temporary}`,
    };
  }
  return {
    ok: false,
    permanent: false,
    failure: "no_address",
    reason: real.length > 0
      ? `MX hosts of ${domain} have no addresses`
      : `${domain} has no MX and no address records`,
  };
}
