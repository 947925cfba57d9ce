/**
 * VERP return paths (Variable Envelope Return Path): each recipient of a message gets its own
 * envelope sender, `b-<message id>-<recipient index>-<tag>@<bounce domain>`, so a report that
 * arrives days later names the one delivery it is about without us parsing its prose, and one
 * recipient cannot file a report against another (KumoMTA and Postal do the same). The tag is an
 * HMAC of id and index under a key only this relay knows (in the manner of BATV): a return path
 * read from a Received header, or edited to name another recipient, does not verify.
 *
 * Older messages carried one return path per message, `b-<message id>-<tag>` with a shorter tag
 * of the id alone; such an address still verifies but names no recipient (core/inbound_reports.ts
 * applies it only to a message with a single recipient).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

export interface VerpConfig {
  /** The domain whose MX points at our inbound listener. */
  domain: string;
  /** HMAC key (a secret, kept in KV). */
  key: string;
}

/** What a verified return path names: a message, and the recipient row when it says. */
export interface VerpTarget {
  msgId: string;
  /** The recipient's index in the message; null for a per-message (older) return path. */
  idx: number | null;
}

/** 64 bits: guessing one takes 2^63 RCPT commands on average. */
const TAG_LENGTH = 16;
const LEGACY_TAG_LENGTH = 10;

function tagOf(msgId: string, idx: number | null, key: string, length: number): string {
  const input = idx === null ? msgId.toUpperCase() : `${msgId.toUpperCase()}.${idx}`;
  return createHmac("sha256", key).update(input).digest("hex").slice(0, length);
}

function sameTag(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** The return path of recipient `idx` of message `msgId`. */
export function verpAddress(msgId: string, idx: number, verp: VerpConfig): string {
  return `b-${msgId.toLowerCase()}-${idx}-${
    tagOf(msgId, idx, verp.key, TAG_LENGTH)
  }@${verp.domain}`;
}

/**
 * What a return path at the bounce domain names: null when it is not VERP-shaped (`b-…`) or not
 * at the bounce domain; "forged" when it is VERP-shaped but its tag does not verify.
 */
export function parseVerp(address: string, verp: VerpConfig): VerpTarget | "forged" | null {
  if (!isBounceDomain(address, verp)) return null;
  const local = address.slice(0, address.lastIndexOf("@"));
  if (!/^b-/i.test(local)) return null;
  const m = /^b-([0-9a-z]{26})(?:-(0|[1-9][0-9]{0,5}))?-([0-9a-f]{10}|[0-9a-f]{16})$/i.exec(local);
  if (!m) return "forged";
  const msgId = m[1]!.toUpperCase();
  const idx = m[2] === undefined ? null : Number(m[2]);
  const tag = m[3]!.toLowerCase();
  const length = idx === null ? LEGACY_TAG_LENGTH : TAG_LENGTH;
  return sameTag(tagOf(msgId, idx, verp.key, length), tag) ? { msgId, idx } : "forged";
}

/** Whether an address is at the bounce domain (VERP or not, e.g. the feedback-loop mailbox). */
export function isBounceDomain(address: string, verp: VerpConfig): boolean {
  const at = address.lastIndexOf("@");
  return at >= 0 && address.slice(at + 1).toLowerCase() === verp.domain.toLowerCase();
}

/**
 * The envelope sender recipient `idx` of a message goes out with: its own VERP address when
 * the message was accepted with VERP (or with the older per-message return path) and a bounce
 * domain is configured; else the message's own sender.
 */
export function returnPathFor(
  msg: { id: string; mailFrom: string; verp?: boolean; returnPath?: string },
  idx: number,
  verp: VerpConfig | undefined,
): string {
  if (verp && (msg.verp || msg.returnPath)) return verpAddress(msg.id, idx, verp);
  return msg.returnPath ?? msg.mailFrom;
}
