/**
 * Header completion at intake (RFC 5322 §3.6, RFC 5321 §4.4): a Received trace header on top,
 * Message-ID and Date when the client left them out. Headers are handled as binary strings
 * (one char per byte) so 8-bit and UTF-8 header bytes pass through untouched.
 */

export interface TraceInfo {
  heloName: string;
  clientAddress: string;
  hostname: string;
  /** RFC 3848 protocol: ESMTP, ESMTPS, ESMTPA, ESMTPSA, or HTTP. */
  protocol: string;
  queueId: string;
  /** Only stated when the message has exactly one recipient (privacy of Bcc). */
  singleRecipient?: string;
  now: Date;
}

export interface CompletedHeaders {
  block: Uint8Array;
  /** `block` as a binary string (one char per byte), for DKIM signing without a second copy. */
  blockText: string;
  messageId: string;
  subject: string;
  /** Every From field's value and every Sender field's value, unfolded, read as UTF-8. */
  senders: SenderFields;
  /** The `X-Postern-Pool` field's value; the field itself is removed from the block. */
  pool?: string;
}

/** The originator fields of a header section (RFC 5322 §3.6.2), each as often as it appears. */
export interface SenderFields {
  from: string[];
  sender: string[];
}

/** Fields that steer Postern and never leave it. */
const CONTROL_FIELDS: ReadonlySet<string> = new Set(["x-postern-pool"]);

/**
 * Verdicts only a receiving system may write (RFC 8601 §5, RFC 8617 §4.1, RFC 7208 §9.1). A
 * submitted `Authentication-Results: dkim=pass` would otherwise leave signed by us, and a
 * receiver trusting our signature might trust the claim with it: they are removed at intake.
 */
export function isReceiverVerdict(name: string): boolean {
  return name === "authentication-results" || name === "received-spf" || name.startsWith("arc-");
}

function isRemovedAtIntake(name: string): boolean {
  return CONTROL_FIELDS.has(name) || isReceiverVerdict(name);
}

/**
 * Removes the named fields (lower-case names), with their folded continuation lines, from a
 * header block (CRLF lines); returns the rest and the removed fields, unfolded.
 */
export function removeFields(
  block: string,
  names: ReadonlySet<string> | ((name: string) => boolean),
): { block: string; removed: { name: string; value: string }[] } {
  const drop = typeof names === "function" ? names : (name: string) => names.has(name);
  const kept: string[] = [];
  const removed: { name: string; value: string }[] = [];
  let dropping = false;
  for (const line of block.split("\r\n")) {
    if ((line[0] === " " || line[0] === "\t") && line !== "") {
      if (dropping) removed[removed.length - 1]!.value += " " + line.trim();
      else kept.push(line);
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : "";
    dropping = drop(name);
    if (dropping) removed.push({ name, value: line.slice(colon + 1).trim() });
    else kept.push(line);
  }
  return { block: kept.join("\r\n"), removed };
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** RFC 5322 date-time in UTC with a numeric zone (GMT is obsolete syntax). */
export function rfc5322Date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${
    MONTHS[d.getUTCMonth()]
  } ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

export function bytesToBinary(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    // apply takes the bytes as they are; a spread would walk them with an iterator first.
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

export function binaryToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

const utf8Decoder = new TextDecoder();

const ASCII = /^[\x00-\x7f]*$/;

/** Whether `text` is all ASCII: one octet a character, the same read as Latin-1 or UTF-8. */
export function isAscii(text: string): boolean {
  return ASCII.test(text);
}

/** A binary-string value read as UTF-8 (RFC 6532), as a reader's mail client would show it. */
export function utf8(value: string): string {
  // ASCII reads the same either way: nearly every From is, and needs no bytes made to decode.
  return isAscii(value) ? value : utf8Decoder.decode(binaryToBytes(value));
}

/** Header fields of a header block (CRLF line endings), unfolded, name lower-cased. */
export function parseHeaderFields(block: string): { name: string; value: string }[] {
  const fields: { name: string; value: string }[] = [];
  for (const line of block.split("\r\n")) {
    if (line === "") continue;
    if ((line[0] === " " || line[0] === "\t") && fields.length > 0) {
      fields[fields.length - 1]!.value += " " + line.trim();
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push({
      name: line.slice(0, colon).trim().toLowerCase(),
      value: line.slice(colon + 1).trim(),
    });
  }
  return fields;
}

function sanitizeToken(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, "").slice(0, 255) || "unknown";
}

/**
 * `headerBlock` is the message's header section without the blank line that ends it (it may be
 * empty when a client sent a body with no headers).
 */
export function completeHeaders(headerBlock: Uint8Array, trace: TraceInfo): CompletedHeaders {
  const original = bytesToBinary(headerBlock);
  const fields = parseHeaderFields(original);
  const has = (name: string) => fields.some((f) => f.name === name);
  const date = rfc5322Date(trace.now);
  const forClause = trace.singleRecipient
    ? `\r\n\tfor <${sanitizeToken(trace.singleRecipient)}>`
    : "";
  const received = `Received: from ${sanitizeToken(trace.heloName)} ([${
    sanitizeToken(trace.clientAddress)
  }])\r\n\tby ${trace.hostname} (Postern) with ${trace.protocol} id ${trace.queueId}${forClause};\r\n\t${date}\r\n`;

  let messageId = fields.find((f) => f.name === "message-id")?.value ?? "";
  let added = "";
  if (!messageId) {
    messageId = `<${trace.queueId.toLowerCase()}@${trace.hostname}>`;
    added += `Message-ID: ${messageId}\r\n`;
  }
  if (!has("date")) added += `Date: ${date}\r\n`;
  const subject = fields.find((f) => f.name === "subject")?.value ?? "";
  // Most header sections hold none of the fields removed here: then nothing is split again.
  const control = fields.some((f) => isRemovedAtIntake(f.name))
    ? removeFields(original, isRemovedAtIntake)
    : { block: original, removed: [] };
  const pool = control.removed.find((f) => f.name === "x-postern-pool")?.value;
  let body = control.block;
  if (body !== "" && !body.endsWith("\r\n")) body += "\r\n";
  const blockText = received + body + added;
  return {
    block: binaryToBytes(blockText),
    blockText,
    messageId,
    subject: subject.slice(0, 998),
    senders: {
      from: fields.filter((f) => f.name === "from").map((f) => utf8(f.value)),
      sender: fields.filter((f) => f.name === "sender").map((f) => utf8(f.value)),
    },
    ...(pool ? { pool } : {}),
  };
}
