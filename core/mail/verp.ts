/**
 * VERP return paths (Variable Envelope Return Path): each message leaves with its own envelope
 * sender, `b-<message id>-<tag>@<bounce domain>`, so a bounce that arrives days later names the
 * message it is about without us parsing its prose. The tag is an HMAC of the id under a key
 * only this relay knows (in the manner of BATV), so a forged bounce for a message id read from a
 * Received header is refused at RCPT.
 */
import { createHmac } from "node:crypto";

export interface VerpConfig {
  /** The domain whose MX points at our inbound listener. */
  domain: string;
  /** HMAC key (a secret, kept in KV). */
  key: string;
}

function tagOf(msgId: string, key: string): string {
  return createHmac("sha256", key).update(msgId.toUpperCase()).digest("hex").slice(0, 10);
}

export function verpAddress(msgId: string, verp: VerpConfig): string {
  return `b-${msgId.toLowerCase()}-${tagOf(msgId, verp.key)}@${verp.domain}`;
}

/** The message id a VERP address stands for, or null when it is not one of ours. */
export function parseVerp(address: string, verp: VerpConfig): string | null {
  const at = address.lastIndexOf("@");
  if (at < 0 || address.slice(at + 1).toLowerCase() !== verp.domain.toLowerCase()) return null;
  const m = /^b-([0-9a-z]{26})-([0-9a-f]{10})$/i.exec(address.slice(0, at));
  if (!m) return null;
  const msgId = m[1]!.toUpperCase();
  return tagOf(msgId, verp.key) === m[2]!.toLowerCase() ? msgId : null;
}

/** Whether an address is at the bounce domain (VERP or not, e.g. the feedback-loop mailbox). */
export function isBounceDomain(address: string, verp: VerpConfig): boolean {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase() === verp.domain.toLowerCase();
}
