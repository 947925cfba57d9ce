/**
 * Which domains a message claims to come from, and whether they align with the domains a
 * credential may use. "Align" is DMARC's relaxed sense (RFC 7489 §3.1): the same domain or a
 * subdomain of it.
 *
 * @module
 */
import { domainOf } from "./address.ts";

/**
 * The domains of the mailboxes in a From field value (RFC 5322 §3.6.2: one or more mailboxes).
 * Quoted display names and comments are dropped first, so an "@" or "<" inside them is ignored.
 */
export function fromHeaderDomains(value: string): string[] {
  let text = value.replace(/"(?:[^"\\]|\\.)*"/g, "");
  for (let before = ""; before !== text;) {
    before = text;
    text = text.replace(/\((?:[^()\\]|\\.)*\)/g, "");
  }
  // Group syntax ("team: a@x, b@y;") keeps its members; the group name goes with the colon.
  return text.replace(/^[^:<>@]*:/, "").replace(/;\s*$/, "").split(",")
    .map((item) => (/<([^<>]*)>/.exec(item)?.[1] ?? item).trim())
    .filter((a) => a.includes("@"))
    .map(domainOf);
}

/** True when `domain` is one of `allowed` or a subdomain of one. */
export function alignsWith(domain: string, allowed: readonly string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, "");
  return allowed.some((a) => d === a || d.endsWith("." + a));
}
