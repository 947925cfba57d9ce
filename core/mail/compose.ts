/**
 * Messages for the HTTP send API: field checks for everything that becomes a header, and MIME
 * building with nodemailer's MailComposer. Header injection is refused, never repaired: a value
 * with CR or LF, an address with angle brackets, a display name, a comment or a second address
 * hidden in it, a display name that looks like an address — each is a 400 naming the field,
 * because quietly rewriting it would send something the caller did not write.
 */
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import addressparser from "nodemailer/lib/addressparser/index.js";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import { checkRelayAddress } from "./address.ts";

/** A mailbox: a bare address, or an address with a display name given apart. */
export type Mailbox = string | { name: string; address: string };

/** Header fields the API builds itself; `headers` may not set them. */
const RESERVED_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "sender",
  "subject",
  "date",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-disposition",
  "content-id",
  "received",
  "return-path",
  "dkim-signature",
  "x-postern-idempotency-key",
  "x-postern-tags",
]);

/** Why an address cannot be used as given, or null. */
export function addressProblem(address: string): string | null {
  if (/[\r\n]/.test(address)) return "contains a line break";
  if (/[<>]/.test(address)) {
    return "must be a bare address such as user@example.com; give a display name as {name, address}";
  }
  if (/[,;]/.test(address)) return "holds more than one address; give a list instead";
  const problem = checkRelayAddress(address);
  return problem ? `is not a valid address (${problem.replace("_", " ")})` : null;
}

/** Why a display name cannot be used, or null. */
export function displayNameProblem(name: string): string | null {
  if (/[\x00-\x1f\x7f]/.test(name)) return "contains a line break or control character";
  if (/[<>@"\\]/.test(name)) return 'may not contain < > @ " or \\ (it would read as an address)';
  return null;
}

/** Why a header field value cannot be used, or null. */
export function headerValueProblem(value: string): string | null {
  if (/[\r\n]/.test(value)) return "contains a line break";
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(value)) return "contains a control character";
  if (value.length > 998) return "is longer than 998 characters (RFC 5322 §2.1.1)";
  return null;
}

/** Why a header field name cannot be set through the API, or null. */
export function headerNameProblem(name: string): string | null {
  if (!/^[\x21-\x39\x3b-\x7e]{1,76}$/.test(name)) {
    return "is not a header field name (printable ASCII without colon or space, RFC 5322 §3.6.8)";
  }
  if (RESERVED_HEADERS.has(name.toLowerCase())) return "is set from its own field, not `headers`";
  return null;
}

export function mailboxAddress(m: Mailbox): string {
  return typeof m === "string" ? m : m.address;
}

export interface Attachment {
  filename: string;
  /** Base64 of the bytes. */
  content: string;
  contentType?: string;
  /** Content-ID for inline images: html refers to it as cid:<cid>. */
  cid?: string;
}

export interface ComposeInput {
  from: Mailbox;
  to: readonly Mailbox[];
  cc: readonly Mailbox[];
  bcc: readonly Mailbox[];
  replyTo: readonly Mailbox[];
  subject: string;
  text?: string;
  html?: string;
  headers: Readonly<Record<string, string>>;
  attachments: readonly Attachment[];
}

function nm(m: Mailbox) {
  return typeof m === "string" ? m : { name: m.name, address: m.address };
}

/**
 * Every line break as CRLF (RFC 5322 §2.3). MailComposer copies a 7bit part's text as it is,
 * so a lone CR or LF from a JSON string would reach the wire bare; instead, each is read as the
 * line break its writer meant.
 */
function lineBreaks(text: string): string {
  return text.replace(/\r\n|\r|\n/g, "\r\n");
}

/** Base64 text decoded a piece at a time, so no attachment is ever held decoded whole. */
function* base64Pieces(text: string, pieceChars = 65_536): Generator<Buffer> {
  for (let i = 0; i < text.length; i += pieceChars) {
    yield Buffer.from(text.slice(i, i + pieceChars), "base64");
  }
}

/**
 * The MIME message as a byte stream (Bcc is left out of the headers, as MailComposer does by
 * default: those recipients are on the envelope only).
 */
export function composeMessage(input: ComposeInput): AsyncIterable<Uint8Array> {
  const composer = new MailComposer({
    from: nm(input.from),
    ...(input.to.length ? { to: input.to.map(nm) } : {}),
    ...(input.cc.length ? { cc: input.cc.map(nm) } : {}),
    ...(input.bcc.length ? { bcc: input.bcc.map(nm) } : {}),
    ...(input.replyTo.length ? { replyTo: input.replyTo.map(nm) } : {}),
    subject: input.subject,
    ...(input.text !== undefined ? { text: lineBreaks(input.text) } : {}),
    ...(input.html !== undefined ? { html: lineBreaks(input.html) } : {}),
    headers: { ...input.headers },
    attachments: input.attachments.map((a) => ({
      filename: a.filename,
      content: Readable.from(base64Pieces(a.content)),
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.cid ? { cid: a.cid } : {}),
    })),
    // Nodemailer would otherwise read `path`/`href` attachments from disk or the network.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return composer.compile().createReadStream() as unknown as AsyncIterable<Uint8Array>;
}

/** The addresses of an address-list header value (RFC 5322 §3.4), groups flattened. */
export function parseAddressList(value: string): { name: string; address: string }[] {
  const out: { name: string; address: string }[] = [];
  const walk = (items: ReturnType<typeof addressparser>) => {
    for (const item of items) {
      if ("group" in item && item.group) walk(item.group);
      else if ("address" in item && item.address) {
        out.push({ name: item.name, address: item.address });
      }
    }
  };
  walk(addressparser(value));
  return out;
}
