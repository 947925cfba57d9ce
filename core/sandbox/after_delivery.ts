/**
 * What the simulated mailbox provider does after it accepted a message: complaint@ files a
 * feedback report (RFC 5965 ARF), ooo@ answers with an out-of-office auto-reply (RFC 3834). Both
 * are real messages handed to the relay's real report handling (core/inbound_reports.ts), so a
 * consumer sees what production would show: a `complained` event and a suppression, and for an
 * auto-reply nothing at all (it is not a bounce).
 *
 * @module
 */
import { acceptReport, recordReport, type ReportDeps } from "../inbound_reports.ts";
import { parseReport } from "../mail/reports.ts";
import { listRows } from "../store/queue.ts";
import type { VerpConfig } from "../mail/verp.ts";
import type { Logger } from "../log.ts";

export interface AfterDeliveryDeps {
  reports: Omit<ReportDeps, "verp">;
  /** Set when VERP return paths exist: the auto-reply then goes where production's would. */
  verp?: VerpConfig;
  hostname: string;
  log: Logger;
}

export interface Delivered {
  mailFrom: string;
  rcpt: string;
  /** The message as the simulated MX received it. */
  raw: Uint8Array;
}

const enc = new TextEncoder();

/** The relay's queue id, from the Received header its intake put on top. */
export function queueIdOf(raw: Uint8Array): string | null {
  const head = new TextDecoder("latin1").decode(raw.subarray(0, 64 * 1024));
  const m = /\(Postern\) with [A-Z0-9]+ id ([0-9A-Z]{26})\b/.exec(head);
  return m ? m[1]! : null;
}

function headerSection(raw: Uint8Array): string {
  const text = new TextDecoder("latin1").decode(raw.subarray(0, 64 * 1024));
  const end = text.indexOf("\r\n\r\n");
  return end >= 0 ? text.slice(0, end + 2) : text;
}

export function feedbackReport(d: Delivered, hostname: string, at: Date): Uint8Array {
  const boundary = `arf-${crypto.randomUUID()}`;
  return enc.encode(
    [
      `From: <abuse@${hostname}>`,
      `To: <${d.mailFrom || "postmaster@" + hostname}>`,
      "Subject: FW: complaint about a message (simulated)",
      `Date: ${at.toUTCString()}`,
      `Message-ID: <${crypto.randomUUID()}@${hostname}>`,
      "MIME-Version: 1.0",
      `Content-Type: multipart/report; report-type=feedback-report; boundary="${boundary}"`,
      "",
      `--${boundary}`,
      "Content-Type: text/plain",
      "",
      "A recipient marked this message as spam (Postern sandbox, complaint@).",
      `--${boundary}`,
      "Content-Type: message/feedback-report",
      "",
      "Feedback-Type: abuse",
      "User-Agent: postern-sandbox/1",
      "Version: 1",
      `Original-Mail-From: <${d.mailFrom}>`,
      `Original-Rcpt-To: <${d.rcpt}>`,
      `Arrival-Date: ${at.toUTCString()}`,
      "",
      `--${boundary}`,
      "Content-Type: text/rfc822-headers",
      "",
      headerSection(d.raw),
      `--${boundary}--`,
      "",
    ].join("\r\n"),
  );
}

export function autoReply(d: Delivered, at: Date): Uint8Array {
  return enc.encode(
    [
      `From: <${d.rcpt}>`,
      `To: <${d.mailFrom}>`,
      "Subject: Out of office (simulated)",
      `Date: ${at.toUTCString()}`,
      `Message-ID: <${crypto.randomUUID()}@simulator>`,
      "Auto-Submitted: auto-replied",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "I am away until Monday and will read your message when I return.",
      "",
    ].join("\r\n"),
  );
}

export async function complain(deps: AfterDeliveryDeps, d: Delivered): Promise<void> {
  const msgId = queueIdOf(d.raw);
  const report = parseReport(feedbackReport(d, deps.hostname, new Date(deps.reports.now())));
  if (!msgId || !report) {
    deps.log.warn("sandbox.complaint_unmatched", { rcpt: d.rcpt });
    return;
  }
  // The relay records the delivery just after our 250: a complaint filed before that would
  // find the recipient still queued (and its row check would undo the delivery's record).
  const idx = await waitUntilDelivered(deps.reports.kv, msgId, d.rcpt, deps.reports.now);
  if (idx === null) {
    deps.log.warn("sandbox.complaint_unmatched", { msg: msgId, rcpt: d.rcpt });
    return;
  }
  const result = await recordReport(deps.reports, { msgId, idx }, report);
  deps.log.info("sandbox.complaint", { msg: msgId, rcpt: d.rcpt, recorded: result.recorded });
}

export async function replyOutOfOffice(deps: AfterDeliveryDeps, d: Delivered): Promise<void> {
  const raw = autoReply(d, new Date(deps.reports.now()));
  // With VERP the return path is the bounce domain's: the reply reaches the report handling,
  // which must tell it from a bounce. Without, it would go to the sender's own mailbox.
  const result = deps.verp && d.mailFrom
    ? await acceptReport({ ...deps.reports, verp: deps.verp }, [d.mailFrom], raw)
    : { recorded: 0, ignored: "auto-reply to the sender's mailbox" };
  deps.log.info("sandbox.auto_reply", {
    msg: queueIdOf(d.raw),
    rcpt: d.rcpt,
    recorded: result.recorded,
    ...(result.ignored ? { ignored: result.ignored } : {}),
  });
}

/**
 * Waits (up to a minute) for the relay to record `rcpt` of `msgId` as delivered; its index in the
 * message, or null when that does not happen.
 */
async function waitUntilDelivered(
  kv: Deno.Kv,
  msgId: string,
  rcpt: string,
  now: () => number,
): Promise<number | null> {
  const until = now() + 60_000;
  const wanted = rcpt.toLowerCase();
  while (now() < until) {
    const row = (await listRows(kv, msgId)).find((r) => r.rcpt.toLowerCase() === wanted);
    if (row?.status === "delivered") return row.idx;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}
