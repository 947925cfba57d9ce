/**
 * Instructions an SMTP client can give Postern in the message itself, for apps that cannot use
 * the HTTP API: `X-Postern-Idempotency-Key` (a repeat within 24 h is answered with the first
 * message's id and queues nothing) and `X-Postern-Tags` (comma-separated labels for search, stats
 * and webhooks). They are read at intake and removed: recipients never see them.
 */
import { binaryToBytes, bytesToBinary } from "./headers.ts";

const IDEMPOTENCY = "x-postern-idempotency-key";
const TAGS = "x-postern-tags";

/** Printable ASCII without spaces, as the HTTP `Idempotency-Key` header. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** Tags: short labels; no spaces or characters that need quoting anywhere they appear. */
export const TAG_PATTERN = /^[A-Za-z0-9_.:@+\/-]{1,64}$/;
export const MAX_TAGS = 10;

export interface PosternHeaders {
  /** The header section with the instructions removed. */
  block: Uint8Array;
  idempotencyKey?: string;
  tags: string[];
}

/** `block` is a header section with CRLF line endings (possibly empty). */
export function takePosternHeaders(block: Uint8Array): PosternHeaders {
  const text = bytesToBinary(block);
  if (!/^x-postern-(idempotency-key|tags)\s*:/im.test(text)) return { block, tags: [] };
  const lines = text.split("\r\n");
  const kept: string[] = [];
  const out: PosternHeaders = { block, tags: [] };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : "";
    if (name !== IDEMPOTENCY && name !== TAGS) {
      kept.push(line);
      continue;
    }
    let value = line.slice(colon + 1);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) value += " " + lines[++i]!.trim();
    value = value.trim();
    if (name === IDEMPOTENCY && IDEMPOTENCY_KEY_PATTERN.test(value)) out.idempotencyKey = value;
    if (name === TAGS) {
      for (const tag of value.split(",").map((t) => t.trim())) {
        if (TAG_PATTERN.test(tag) && !out.tags.includes(tag) && out.tags.length < MAX_TAGS) {
          out.tags.push(tag);
        }
      }
    }
  }
  out.block = binaryToBytes(kept.join("\r\n"));
  return out;
}
