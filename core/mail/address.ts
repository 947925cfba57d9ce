/**
 * Envelope address handling (RFC 5321 §4.1.2, limits from §4.5.3.1). Postern relays; it does not
 * route by local part, so anything that could turn a local part into a second hop (percent hack,
 * source routes, bang paths, extra @) is refused rather than interpreted.
 */

export const MAX_LOCAL_PART = 64;
export const MAX_DOMAIN = 255;
export const MAX_PATH = 256;

const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const UTF8_LABEL = /^[^\s@.\x00-\x1f\x7f]{1,63}$/u;

export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return (at >= 0 ? address.slice(at + 1) : "").toLowerCase().replace(/\.$/, "");
}

export function isValidDomain(domain: string): boolean {
  if (!domain || domain.length > MAX_DOMAIN) return false;
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
  if (address.length > MAX_PATH) return "too_long";
  if (address.startsWith("@") || address.includes(":")) return "source_route";
  const at = address.lastIndexOf("@");
  if (at <= 0) return "syntax";
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > MAX_LOCAL_PART) return "too_long";
  if (local.includes("@")) return "syntax"; // quoted "a@b"@c or a@b@c: one @ only
  if (local.includes("%")) return "percent_hack";
  if (local.includes("!")) return "bang_path";
  if (/[\s\x00-\x1f\x7f<>()\[\],;\\"]/.test(local)) return "syntax";
  if (!isValidDomain(domain)) return "bad_domain";
  return null;
}

/** Sender check: the null reverse-path `<>` is allowed (bounces). */
export function checkSenderAddress(address: string): AddressProblem | null {
  if (address === "") return null;
  return checkRelayAddress(address);
}
