/** CIDR matching on top of ipaddr.js, which handles IPv4-mapped IPv6 and the edge cases. */
import ipaddr from "ipaddr.js";

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

export function parseCidr(text: string): Cidr {
  try {
    return text.includes("/") ? ipaddr.parseCIDR(text) : (() => {
      const addr = ipaddr.parse(text);
      return [addr, addr.kind() === "ipv4" ? 32 : 128] as Cidr;
    })();
  } catch {
    throw new Error(`Cannot parse network "${text}": expected an address or CIDR like 10.0.0.0/8`);
  }
}

function normalize(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const addr = ipaddr.parse(address.replace(/^\[|\]$/g, ""));
    if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (addr as ipaddr.IPv6).toIPv4Address();
    }
    return addr;
  } catch {
    return undefined;
  }
}

/** Compiles a list of networks once into a predicate for the hot path. */
export function networkMatcher(cidrs: readonly string[]): (address: string) => boolean {
  const parsed = cidrs.map(parseCidr);
  if (parsed.length === 0) return () => false;
  return (address: string) => {
    const addr = normalize(address);
    if (!addr) return false;
    return parsed.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits));
  };
}
