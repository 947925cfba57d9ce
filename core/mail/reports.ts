/**
 * Reading the reports that come back after a message left: delivery status notifications
 * (RFC 3464, `multipart/report; report-type=delivery-status`) and abuse feedback reports
 * (ARF, RFC 5965, `report-type=feedback-report`). Only what the queue needs is read: per
 * recipient the action, status and diagnostic of a DSN; the feedback type and original envelope
 * of an ARF report; and the original message's header section when it is attached.
 */
import { Buffer } from "node:buffer";
import { bytesToBinary, parseHeaderFields } from "./headers.ts";

type Fields = { name: string; value: string }[];

export interface DsnRecipient {
  /** Final-Recipient (else Original-Recipient), without its address type. */
  recipient: string;
  /** failed, delayed, delivered, relayed or expanded (RFC 3464 §2.3.3). */
  action: string;
  /** The RFC 3463 status, e.g. 5.1.1. */
  status: string;
  diagnostic: string | null;
}

export type Report =
  | { kind: "dsn"; recipients: DsnRecipient[]; originalHeaders: Fields }
  | {
    kind: "arf";
    /** abuse, fraud, virus, other or not-spam (RFC 5965 §7.3). */
    feedbackType: string;
    originalMailFrom: string | null;
    originalRcptTo: string[];
    originalHeaders: Fields;
  };

function field(fields: Fields, name: string): string | null {
  return fields.find((f) => f.name === name)?.value ?? null;
}

function param(value: string, name: string): string | null {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(value);
  return m ? (m[1] ?? m[2] ?? null) : null;
}

/** "rfc822; <user@example.com>" → "user@example.com" */
export function bareAddress(value: string): string {
  const typed = value.includes(";") ? value.slice(value.indexOf(";") + 1) : value;
  return typed.trim().replace(/^<|>$/g, "").trim();
}

interface Part {
  type: string;
  fields: Fields;
  body: string;
}

function splitHead(text: string): { fields: Fields; body: string } {
  const end = text.indexOf("\r\n\r\n");
  const head = end < 0 ? text : text.slice(0, end);
  return { fields: parseHeaderFields(head), body: end < 0 ? "" : text.slice(end + 4) };
}

function parts(body: string, boundary: string): Part[] {
  const out: Part[] = [];
  const delimiter = `\r\n--${boundary}`;
  const chunks = ("\r\n" + body).split(delimiter).slice(1);
  for (const chunk of chunks) {
    if (chunk.startsWith("--")) break; // the close delimiter
    const { fields, body: partBody } = splitHead(chunk.replace(/^[ \t]*\r\n/, ""));
    const encoding = (field(fields, "content-transfer-encoding") ?? "").toLowerCase();
    out.push({
      type: (field(fields, "content-type") ?? "text/plain").split(";")[0]!.trim().toLowerCase(),
      fields,
      body: encoding === "base64"
        ? Buffer.from(partBody.replace(/\s+/g, ""), "base64").toString("latin1")
        : partBody,
    });
  }
  return out;
}

/** The field groups of a status or feedback body (blank-line separated, RFC 3464 §2.1). */
function groups(body: string): Fields[] {
  return body.split(/\r\n\r\n+/).map((g) => parseHeaderFields(g.trim())).filter((g) =>
    g.length > 0
  );
}

function originalHeaders(all: Part[]): Fields {
  const original = all.find((p) =>
    p.type === "message/rfc822" || p.type === "text/rfc822-headers" ||
    p.type === "message/global" || p.type === "message/global-headers"
  );
  return original ? splitHead(original.body).fields : [];
}

/** Reads a DSN or an ARF report; null for anything else (an auto-reply, say). */
export function parseReport(raw: Uint8Array): Report | null {
  const text = bytesToBinary(raw).replace(/\r?\n/g, "\r\n");
  const top = splitHead(text);
  const contentType = field(top.fields, "content-type") ?? "";
  if (!/^multipart\/report\b/i.test(contentType)) return null;
  const boundary = param(contentType, "boundary");
  const reportType = (param(contentType, "report-type") ?? "").toLowerCase();
  if (!boundary) return null;
  const all = parts(top.body, boundary);

  if (reportType === "delivery-status" || reportType === "global-delivery-status") {
    const status = all.find((p) =>
      p.type === "message/delivery-status" || p.type === "message/global-delivery-status"
    );
    if (!status) return null;
    const recipients: DsnRecipient[] = [];
    for (const g of groups(status.body)) {
      const rcpt = field(g, "final-recipient") ?? field(g, "original-recipient");
      if (!rcpt) continue; // the per-message group
      recipients.push({
        recipient: bareAddress(rcpt),
        action: (field(g, "action") ?? "").toLowerCase(),
        status: (field(g, "status") ?? "").split(/\s/)[0]!,
        diagnostic: field(g, "diagnostic-code"),
      });
    }
    return { kind: "dsn", recipients, originalHeaders: originalHeaders(all) };
  }

  if (reportType === "feedback-report") {
    const feedback = all.find((p) => p.type === "message/feedback-report");
    if (!feedback) return null;
    const fields = groups(feedback.body).flat();
    const from = field(fields, "original-mail-from");
    return {
      kind: "arf",
      feedbackType: (field(fields, "feedback-type") ?? "other").toLowerCase(),
      originalMailFrom: from ? bareAddress(from) : null,
      originalRcptTo: fields.filter((f) => f.name === "original-rcpt-to").map((f) =>
        bareAddress(f.value)
      ),
      originalHeaders: originalHeaders(all),
    };
  }
  return null;
}
