/**
 * Delivery Status Notifications (RFC 3464) for recipients that failed for good: a
 * multipart/report (RFC 6522) with a human-readable part, a message/delivery-status part with
 * per-recipient fields, and the original headers as text/rfc822-headers.
 *
 * Instead of nodemailer's MailComposer, which knows no multipart/report and would re-encode the
 * original headers, the few fixed parts are written here directly; no npm package builds DSNs
 * well enough to depend on (searched: none maintained, mailauth and nodemailer have none).
 *
 * @module
 */
import { parseReply } from "../policy/classify.ts";
import { parseHeaderFields, rfc5322Date } from "./headers.ts";

export interface DsnRecipient {
  rcpt: string;
  /** RFC 3463 status, e.g. "5.1.1"; see {@linkcode dsnStatus}. */
  status: string;
  /** The remote reply, or our description of why no server took the message. */
  diagnostic: string;
  /** The MX or smarthost that gave the reply, if one did. */
  remoteMta?: string;
  lastAttemptAt: number;
}

export interface DsnInput {
  /** Our host name (Reporting-MTA, From). */
  reportingMta: string;
  /** The original message's queue id. */
  queueId: string;
  /** The original envelope sender: the DSN goes there. */
  to: string;
  arrivalAt: number;
  /** The original message's header section (CRLF lines, no blank line). */
  originalHeaders: Uint8Array;
  recipients: readonly DsnRecipient[];
  now: number;
  /** The DSN's own Message-ID, with angle brackets. */
  messageId: string;
  /** @default a random boundary */
  boundary?: string;
}

const encoder = new TextEncoder();

/**
 * The RFC 3463 status for a failed recipient: the reply's own enhanced code when it has one of
 * the right class, "4.4.7" (delivery time expired) for an expired recipient, "5.1.2" for a
 * destination that does not exist, else the reply's class with ".0.0".
 */
export function dsnStatus(reply: string, how: "bounced" | "expired", category?: string): string {
  if (how === "expired") return "4.4.7";
  if (category === "bad_domain") {
    try {
      const r = parseReply(reply);
      if (r.enhanced?.startsWith("5.")) return r.enhanced;
    } catch {
      // not an SMTP reply: a DNS verdict
    }
    return "5.1.2";
  }
  try {
    const r = parseReply(reply);
    if (r.enhanced?.startsWith("5.")) return r.enhanced;
    if (r.code >= 500) return "5.0.0";
  } catch {
    // fall through
  }
  return "5.0.0";
}

/** Whether a header section belongs to a delivery report (a DSN never answers a DSN). */
export function isDeliveryReport(headers: Uint8Array | string): boolean {
  const text = typeof headers === "string" ? headers : new TextDecoder("latin1").decode(headers);
  const ct = parseHeaderFields(text).find((f) => f.name === "content-type")?.value ?? "";
  return /^multipart\/report\b/i.test(ct) && /report-type\s*=\s*"?delivery-status/i.test(ct);
}

/** The header section of a message (without the blank line), capped at `max` bytes. */
export function headerSection(body: Uint8Array, max = 32_000): Uint8Array {
  let end = body.length;
  for (let i = 0; i + 3 < body.length; i++) {
    if (body[i] === 13 && body[i + 1] === 10 && body[i + 2] === 13 && body[i + 3] === 10) {
      end = i + 2;
      break;
    }
  }
  if (end <= max) return body.subarray(0, end);
  // Cut at a line end so the part stays a sequence of whole header lines.
  let cut = max;
  while (cut > 0 && !(body[cut - 2] === 13 && body[cut - 1] === 10)) cut--;
  return body.subarray(0, cut);
}

// Header values must be printable ASCII on lines of at most 998 octets (RFC 5322 §2.1.1).
function clean(text: string, max = 900): string {
  const ascii = text.replace(/[\r\n\t]+/g, " ").replace(/[^\x20-\x7e]/g, "?").trim();
  return ascii.length > max ? ascii.slice(0, max - 3) + "..." : ascii;
}

// Folds a field at spaces so no line passes 78 characters (RFC 5322 §2.2.3).
function fold(name: string, value: string): string {
  const words = value.split(" ");
  let line = `${name}:`;
  const lines: string[] = [];
  for (const w of words) {
    if (line.length + 1 + w.length > 78 && line.trim() !== `${name}:`) {
      lines.push(line);
      line = ` ${w}`;
    } else {
      line += ` ${w}`;
    }
  }
  lines.push(line);
  return lines.join("\r\n");
}

function addressType(address: string): string {
  // RFC 6533 §3: a UTF-8 address is typed utf-8, not rfc822.
  return /[^\x00-\x7f]/.test(address) ? `utf-8; ${address}` : `rfc822; ${address}`;
}

function diagnosticCode(diagnostic: string): string {
  try {
    const r = parseReply(diagnostic);
    const text = [r.enhanced, r.text].filter(Boolean).join(" ");
    return `smtp; ${r.code}${text ? " " + text : ""}`;
  } catch {
    return `X-Postern; ${diagnostic}`;
  }
}

function randomBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "=_postern_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Builds the whole DSN message, CRLF line endings, ready for intake. */
export function buildDsn(input: DsnInput): Uint8Array {
  const boundary = input.boundary ?? randomBoundary();
  const expired = input.recipients.some((r) => r.status === "4.4.7");
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.to}>`,
    `Subject: ${expired ? "Delivery expired" : "Undelivered Mail Returned to Sender"}`,
    `Date: ${rfc5322Date(new Date(input.now))}`,
    `Message-ID: ${input.messageId}`,
    // RFC 3834 §5: generated automatically, so autoresponders leave it alone.
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
  ];
  const originalId = parseHeaderFields(new TextDecoder("latin1").decode(input.originalHeaders))
    .find((f) => f.name === "message-id")?.value;
  if (originalId && /^<[^<>\s]+>$/.test(originalId)) {
    head.push(`In-Reply-To: ${originalId}`, `References: ${originalId}`);
  }

  const human = [
    `This is the mail system at host ${input.reportingMta}.`,
    "",
    "Your message could not be delivered to one or more recipients. It is attached below",
    `(queue id ${input.queueId}).`,
    "",
    ...input.recipients.flatMap((r) => [
      `<${r.rcpt}>: ${r.status === "4.4.7" ? "gave up after retrying: " : ""}${
        clean(r.diagnostic, 500)
      }`,
    ]),
    "",
  ];

  const perMessage = [
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Postern-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${rfc5322Date(new Date(input.arrivalAt))}`,
  ];
  const perRecipient = input.recipients.map((r) =>
    [
      `Final-Recipient: ${addressType(r.rcpt)}`,
      "Action: failed",
      `Status: ${r.status}`,
      ...(r.remoteMta ? [`Remote-MTA: dns; ${clean(r.remoteMta, 255)}`] : []),
      fold("Diagnostic-Code", clean(diagnosticCode(r.diagnostic))),
      `Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttemptAt))}`,
    ].join("\r\n")
  );

  const text = [
    ...head,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "Content-Description: Notification",
    "",
    ...human,
    `--${boundary}`,
    "Content-Type: message/delivery-status",
    "Content-Description: Delivery report",
    "",
    perMessage.join("\r\n"),
    "",
    perRecipient.join("\r\n\r\n"),
    "",
    `--${boundary}`,
    "Content-Type: text/rfc822-headers",
    "Content-Description: Undelivered message headers",
    "",
    "",
  ].join("\r\n");
  const closing = `\r\n--${boundary}--\r\n`;
  let headers = input.originalHeaders;
  // The part ends with the headers' own last CRLF; drop it so the delimiter's CRLF stands alone.
  if (
    headers.length >= 2 && headers[headers.length - 2] === 13 && headers[headers.length - 1] === 10
  ) {
    headers = headers.subarray(0, headers.length - 2);
  }
  const a = encoder.encode(text);
  const c = encoder.encode(closing);
  const out = new Uint8Array(a.length + headers.length + c.length);
  out.set(a);
  out.set(headers, a.length);
  out.set(c, a.length + headers.length);
  return out;
}
