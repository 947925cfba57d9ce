/**
 * Where an outbound HTTP request (a webhook) may go. A URL that reaches loopback, private,
 * link-local or other special-purpose addresses would let an API user make the relay probe its
 * own network (SSRF), so such targets are refused unless an operator allowed them by CIDR.
 * Names are resolved through the injected resolver (POSTERN_DNS), every address must pass, and
 * the caller connects to the address checked here, so a second lookup cannot rebind the name.
 */
import ipaddr from "ipaddr.js";
import { NoRecordsError, type Resolver } from "../mail/mx.ts";

/** ipaddr.js range names of ordinary globally routable unicast space. */
const PUBLIC_RANGES = new Set(["unicast"]);

function parse(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    const addr = ipaddr.parse(address.replace(/^\[|\]$/g, ""));
    if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (addr as ipaddr.IPv6).toIPv4Address();
    }
    return addr;
  } catch {
    return null;
  }
}

/** True for globally routable unicast addresses only (RFC 6890 special-purpose ranges are not). */
export function isPublicAddress(address: string): boolean {
  const addr = parse(address);
  return addr !== null && PUBLIC_RANGES.has(addr.range());
}

export type TargetCheck =
  | { ok: true; host: string; address: string; family: 4 | 6 }
  | { ok: false; reason: string };

export interface TargetOptions {
  resolver: Resolver;
  /** Operator-allowed networks (POSTERN_WEBHOOK_ALLOW), e.g. loopback in tests. */
  allowed(address: string): boolean;
}

/**
 * Resolves a URL's host and checks every address it has; returns the one to connect to.
 * Never throws: a lookup failure is a refusal with its reason.
 */
export async function checkHttpTarget(url: URL, options: TargetOptions): Promise<TargetCheck> {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, reason: `scheme ${url.protocol} is not http or https` };
  }
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  let addresses: string[];
  if (parse(host)) {
    addresses = [host];
  } else {
    addresses = [];
    for (const type of ["A", "AAAA"] as const) {
      try {
        addresses.push(...await options.resolver.addresses(host, type));
      } catch (err) {
        if (!(err instanceof NoRecordsError)) {
          return { ok: false, reason: `cannot resolve ${host}: ${(err as Error).message}` };
        }
      }
    }
    if (addresses.length === 0) return { ok: false, reason: `${host} has no A or AAAA records` };
  }
  for (const address of addresses) {
    if (!isPublicAddress(address) && !options.allowed(address)) {
      return {
        ok: false,
        reason: `${host} resolves to ${address}, a ${
          parse(address)?.range() ?? "invalid"
        } address; only public addresses are allowed`,
      };
    }
  }
  const address = addresses.find((a) => parse(a)!.kind() === "ipv4") ?? addresses[0]!;
  const normalized = parse(address)!;
  return {
    ok: true,
    host,
    address: normalized.toString(),
    family: normalized.kind() === "ipv4" ? 4 : 6,
  };
}
