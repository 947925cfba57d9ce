/**
 * Envelope address handling (RFC 5321 §4.1.2, limits from §4.5.3.1). Postern relays; it does not
 * route by local part, so anything that could turn a local part into a second hop (percent hack,
 * source routes, bang paths, extra @) is refused rather than interpreted.
 */
import { domainToASCII } from "node:url";
import { isAscii } from "./headers.ts";

/** RFC 5321 §4.5.3.1.1: octets in a local part. */
export const MAX_LOCAL_PART = 64;
/** RFC 5321 §4.5.3.1.2: octets in a domain. */
export const MAX_DOMAIN = 255;
/** RFC 5321 §4.5.3.1.3: octets in a path, the angle brackets included. */
export const MAX_PATH = 256;

const encoder = new TextEncoder();

/** Limits count octets on the wire (UTF-8 with SMTPUTF8), not UTF-16 code units. */
function octets(text: string): number {
  // Nearly every address is ASCII, one octet a character: no bytes made only to be counted.
  return isAscii(text) ? text.length : encoder.encode(text).length;
}

const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const UTF8_LABEL = /^[^\s@.\x00-\x1f\x7f]{1,63}$/u;

export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return (at >= 0 ? address.slice(at + 1) : "").toLowerCase().replace(/\.$/, "");
}

/**
 * The A-label form of a domain (RFC 5891; how domains are stored), lower-cased, without a
 * trailing dot; a name that has none is returned as it is.
 */
export function asciiDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, "");
  return domainToASCII(d) || d;
}

export function isValidDomain(domain: string): boolean {
  if (!domain || octets(domain) > MAX_DOMAIN) return false;
  if (/^\[.*\]$/.test(domain)) return false; // address literals are not relayed to
  const labels = domain.split(".");
  if (labels.length < 2) return false;
  return labels.every((l) =>
    DOMAIN_LABEL.test(l) || (/[^\x00-\x7f]/.test(l) && UTF8_LABEL.test(l))
  );
}

export type AddressProblem =
  | "syntax"
  | "too_long"
  | "source_route"
  | "percent_hack"
  | "bang_path"
  | "bad_domain";

/** Checks a recipient for relaying; returns the problem or null. */
export function checkRelayAddress(address: string): AddressProblem | null {
  if (octets(address) + 2 > MAX_PATH) return "too_long";
  if (address.startsWith("@") || address.includes(":")) return "source_route";
  const at = address.lastIndexOf("@");
  if (at <= 0) return "syntax";
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (octets(local) > MAX_LOCAL_PART) return "too_long";
  if (local.includes("@")) return "syntax"; // quoted "a@b"@c or a@b@c: one @ only
  if (local.includes("%")) return "percent_hack";
  if (local.includes("!")) return "bang_path";
  if (/[\s\x00-\x1f\x7f<>()\[\],;\\"]/.test(local)) return "syntax";
  if (/^\.|\.$|\.\./.test(local)) return "syntax"; // RFC 5321 §4.1.2 Dot-string
  if (!isValidDomain(domain)) return "bad_domain";
  return null;
}

/** Sender check: the null reverse-path `<>` is allowed (bounces). */
export function checkSenderAddress(address: string): AddressProblem | null {
  if (address === "") return null;
  return checkRelayAddress(address);
}
