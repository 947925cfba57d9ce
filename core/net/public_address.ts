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

type Address = ipaddr.IPv4 | ipaddr.IPv6;

function parse(address: string): Address | null {
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

function ipv4Of(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 255, low >> 8, low & 255]);
}

/**
 * The IPv4 addresses an IPv6 address carries, for the forms that reach them: the kernel
 * (IPv4-mapped, -compatible and -translated), a NAT64 gateway (64:ff9b::/96), 6to4 relays
 * (2002::/16) and Teredo (2001::/32: the server, and the client stored inverted). Without this,
 * `[::a9fe:a9fe]` is "unicast" to ipaddr.js and a webhook could reach 169.254.169.254.
 * null when the address embeds none.
 */
function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4[] | null {
  const p = addr.parts;
  const zero = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  // ::a.b.c.d (compatible), ::ffff:a.b.c.d (mapped), but :: and ::1 are themselves.
  if (zero(0, 5) && (p[5] === 0xffff || (p[5] === 0 && (p[6] !== 0 || p[7]! > 1)))) {
    return [ipv4Of(p[6]!, p[7]!)];
  }
  if (zero(0, 4) && p[4] === 0xffff && p[5] === 0) return [ipv4Of(p[6]!, p[7]!)]; // translated
  if (p[0] === 0x64 && p[1] === 0xff9b && zero(2, 6)) return [ipv4Of(p[6]!, p[7]!)]; // NAT64
  if (p[0] === 0x2002) return [ipv4Of(p[1]!, p[2]!)]; // 6to4
  if (p[0] === 0x2001 && p[1] === 0) {
    return [ipv4Of(p[2]!, p[3]!), ipv4Of(~p[6]! & 0xffff, ~p[7]! & 0xffff)]; // Teredo
  }
  return null;
}

/** 64:ff9b::/32 outside the well-known /96, e.g. RFC 8215's local-use 64:ff9b:1::/48. */
function isLocalNat64(addr: Address): boolean {
  const p = addr.kind() === "ipv6" ? (addr as ipaddr.IPv6).parts : null;
  return p !== null && p[0] === 0x64 && p[1] === 0xff9b &&
    embeddedIPv4(addr as ipaddr.IPv6) === null;
}

/** What an address is judged by: the IPv4 addresses it embeds, else itself. */
function judgedBy(addr: Address): Address[] {
  return addr.kind() === "ipv6" ? embeddedIPv4(addr as ipaddr.IPv6) ?? [addr] : [addr];
}

function isPublic(addr: Address): boolean {
  return !isLocalNat64(addr) && judgedBy(addr).every((a) => PUBLIC_RANGES.has(a.range()));
}

/**
 * True for globally routable unicast addresses only (RFC 6890 special-purpose ranges are not);
 * an IPv6 address that embeds IPv4 addresses is public only when every one of them is.
 */
export function isPublicAddress(address: string): boolean {
  const addr = parse(address);
  return addr !== null && isPublic(addr);
}

/** Why an address is refused, naming the embedded IPv4 address that decided it. */
function refusalOf(addr: Address, allowed: (address: string) => boolean): string | null {
  if (isLocalNat64(addr)) return "a local-use NAT64 address";
  for (const a of judgedBy(addr)) {
    if (PUBLIC_RANGES.has(a.range()) || allowed(a.toString())) continue;
    return a === addr
      ? `a ${a.range()} address`
      : `an address embedding ${a}, a ${a.range()} address`;
  }
  return null;
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
    const addr = parse(address);
    const refusal = addr === null ? "an invalid address" : refusalOf(addr, options.allowed);
    if (refusal !== null) {
      return {
        ok: false,
        reason: `${host} resolves to ${address}, ${refusal}; only public addresses are ` +
          "allowed unless the relay's POSTERN_WEBHOOK_ALLOW lists the network",
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
