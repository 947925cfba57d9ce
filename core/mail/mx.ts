/**
 * Where mail for a domain goes (RFC 5321 §5.1): MX hosts by preference, each resolved to its
 * addresses; no MX → the domain's own A/AAAA (implicit MX); a null MX (RFC 7505) → nowhere.
 * The resolver is injected so tests answer from a zone of their own.
 */

export type RecordType = "MX" | "A" | "AAAA";

export interface Resolver {
  mx(name: string): Promise<{ exchange: string; preference: number }[]>;
  addresses(name: string, type: "A" | "AAAA"): Promise<string[]>;
}

/** Name exists but has no such record, or does not exist at all. */
export class NoRecordsError extends Error {
  override name = "NoRecordsError";
}

export function denoResolver(nameServer?: { ipAddr: string; port: number }): Resolver {
  const base = nameServer ? { nameServer } : {};
  async function query<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new NoRecordsError(String(err));
      throw err;
    }
  }
  return {
    mx: (name) =>
      query(() => Deno.resolveDns(name, "MX", { ...base, signal: AbortSignal.timeout(5000) })),
    addresses: (name, type) =>
      query(() => Deno.resolveDns(name, type, { ...base, signal: AbortSignal.timeout(5000) })),
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
  | { ok: false; permanent: boolean; reason: string };

async function addressesOf(resolver: Resolver, name: string): Promise<string[]> {
  const out: string[] = [];
  let lastError: unknown = null;
  for (const type of ["A", "AAAA"] as const) {
    try {
      out.push(...await resolver.addresses(name, type));
    } catch (err) {
      if (!(err instanceof NoRecordsError)) lastError = err;
    }
  }
  if (out.length === 0 && lastError) throw lastError;
  return out;
}

export async function resolveMx(resolver: Resolver, domain: string): Promise<MxResult> {
  let records: { exchange: string; preference: number }[];
  try {
    records = await resolver.mx(domain);
  } catch (err) {
    if (!(err instanceof NoRecordsError)) {
      return { ok: false, permanent: false, reason: `MX lookup for ${domain} failed: ${err}` };
    }
    records = [];
  }
  const clean = records.map((r) => ({
    exchange: r.exchange.replace(/\.$/, "").toLowerCase(),
    preference: r.preference,
  }));
  if (clean.length === 1 && clean[0]!.exchange === "") {
    return { ok: false, permanent: true, reason: `${domain} accepts no mail (null MX, RFC 7505)` };
  }
  const exchanges = clean.length > 0
    ? clean.sort((a, b) => a.preference - b.preference)
    : [{ exchange: domain, preference: 0 }];
  const hosts: MxHost[] = [];
  let temporary = false;
  for (const mx of exchanges) {
    try {
      for (const address of await addressesOf(resolver, mx.exchange)) {
        hosts.push({ name: mx.exchange, address, preference: mx.preference });
      }
    } catch {
      temporary = true;
    }
  }
  if (hosts.length > 0) return { ok: true, hosts };
  if (temporary) {
    return { ok: false, permanent: false, reason: `address lookup for ${domain}'s MX failed` };
  }
  return {
    ok: false,
    permanent: true,
    reason: clean.length > 0
      ? `MX hosts of ${domain} have no addresses`
      : `${domain} has no MX and no address records`,
  };
}
