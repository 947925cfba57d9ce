/**
 * Which domains a message claims to come from, and whether they align with the domains a sender
 * may use. "Align" is DMARC's relaxed sense (RFC 7489 §3.1): the same domain or a subdomain of it.
 *
 * Two readings of a From or Sender field. `fromHeaderDomains` is what a parser makes of it (the
 * mailboxes, for choosing the DKIM key). `claimedDomains` is what a reader might be shown: every
 * domain written after an "@" anywhere in the field, display names, comments and RFC 2047
 * encoded-words included. Mail clients disagree on fields like `<x@a.test> <ceo@b.test>` (which
 * address is the sender?) or `"ceo@b.test" <x@a.test>` (which one is shown?), so a sender scope
 * is checked against every domain any of them could take from the field.
 *
 * @module
 */
import { decodedWords } from "./encoded_words.ts";
import { domainOf } from "./address.ts";
import { parseAddressList } from "./compose.ts";

/**
 * The field value last parsed and its domains: a message's From is read twice, by the scope
 * check and for the DKIM key, one right after the other.
 */
let lastValue: string | null = null;
let lastDomains: readonly string[] = [];

/** The domains of the mailboxes in a From field value, as a parser reads them. */
export function fromHeaderDomains(value: string): string[] {
  if (value !== lastValue) {
    lastDomains = parseAddressList(value).map((m) => m.address).filter((a) => a.includes("@"))
      .map(domainOf);
    lastValue = value;
  }
  return [...lastDomains];
}

/** What may follow an "@" as a domain: anything up to a delimiter of RFC 5322 or a space. */
const AT_DOMAIN = /@\s*([^\s<>()\[\]",;:@\\]*)/g;

/**
 * Every domain the field names: the parsed mailboxes' domains and each "@domain" written anywhere
 * in it (before and after decoding encoded-words), lower-cased, without a trailing dot, each once.
 * A mailbox at an address literal is reported as written ("[…]"), so that a scope refuses it
 * rather than overlooking it.
 */
export function claimedDomains(value: string): string[] {
  const found = new Set(fromHeaderDomains(value));
  for (const text of new Set([value, decodedWords(value)])) {
    for (const m of text.matchAll(AT_DOMAIN)) {
      const domain = m[1]!.toLowerCase().replace(/\.+$/, "");
      if (domain !== "") found.add(domain);
    }
  }
  return [...found];
}

/** True when `domain` is one of `allowed` or a subdomain of one. */
export function alignsWith(domain: string, allowed: readonly string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, "");
  return allowed.some((a) => d === a || d.endsWith("." + a));
}
