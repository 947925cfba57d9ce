/**
 * What happens when a report reaches the bounce domain: find the message through its VERP
 * return path (core/mail/verp.ts), then record each failed recipient as `bounced` (suppressing
 * bad addresses, as a bounce during delivery would) and each complaint as `complained`
 * (suppressing the address: a recipient who reported the mail as spam must not get more).
 * Reports that name no message of ours, or that we already recorded, change nothing.
 */
import type { Committer } from "./store/committer.ts";
import type { Logger } from "./log.ts";
import { parseReport, type Report } from "./mail/reports.ts";
import { parseVerp, type VerpConfig } from "./mail/verp.ts";
import { classifyReply } from "./policy/classify.ts";
import { bounceSuppresses } from "./policy/dns_outcome.ts";
import { loadMessage } from "./store/queue.ts";
import { findRow, reportChange, type ReportOutcome } from "./store/reports.ts";
import { listMessageEvents } from "./store/events.ts";
import { listRows } from "./store/queue.ts";

export interface ReportDeps {
  kv: Deno.Kv;
  committer: Committer;
  verp: VerpConfig;
  log: Logger;
  now(): number;
  /** This node's suppression cache, told at once (other nodes reload it on their poll). */
  suppressions?: { remember(account: string, address: string, reason: string): void };
}

export interface ReportResult {
  /** Recipients whose state changed. */
  recorded: number;
  /** Why nothing was recorded, when nothing was. */
  ignored?: string;
}

function messageIdOf(report: Report, envelopeRecipients: readonly string[], verp: VerpConfig) {
  const candidates = [
    ...envelopeRecipients,
    ...(report.kind === "arf" && report.originalMailFrom ? [report.originalMailFrom] : []),
    ...report.originalHeaders.filter((f) => f.name === "return-path").map((f) =>
      f.value.replace(/^<|>$/g, "")
    ),
  ];
  for (const c of candidates) {
    const id = parseVerp(c, verp);
    if (id) return id;
  }
  return null;
}

export async function acceptReport(
  deps: ReportDeps,
  envelopeRecipients: readonly string[],
  raw: Uint8Array,
): Promise<ReportResult> {
  const report = parseReport(raw);
  if (!report) return { recorded: 0, ignored: "not a delivery status or feedback report" };
  const msgId = messageIdOf(report, envelopeRecipients, deps.verp);
  if (!msgId) return { recorded: 0, ignored: "names no message of ours" };
  const msg = await loadMessage(deps.kv, msgId);
  if (!msg) return { recorded: 0, ignored: `message ${msgId} is no longer stored` };

  const outcomes: { rcpt: string; outcome: ReportOutcome }[] = [];
  const now = deps.now();
  if (report.kind === "dsn") {
    for (const r of report.recipients) {
      if (r.action !== "failed") continue; // delayed, delivered, relayed: nothing to record
      const status = /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status) ? r.status : "5.0.0";
      const text = r.diagnostic ?? "";
      const category = classifyReply({
        code: status.startsWith("4") ? 450 : 550,
        enhanced: status,
        text,
      }).category ?? "other";
      const reply = `asynchronous bounce: ${status} ${text}`.trim();
      outcomes.push({
        rcpt: r.recipient,
        outcome: {
          type: "bounced",
          reply,
          category,
          suppress: bounceSuppresses(category)
            ? {
              address: r.recipient,
              reason: category,
              source: "bounce",
              createdAt: now,
              msgId,
              reply,
            }
            : null,
        },
      });
    }
  } else if (report.feedbackType !== "not-spam") {
    let rcpts = report.originalRcptTo;
    if (rcpts.length === 0) {
      const rows = await listRows(deps.kv, msgId);
      rcpts = rows.length === 1 ? [rows[0]!.rcpt] : [];
    }
    const reply = `feedback report: ${report.feedbackType}`;
    for (const rcpt of rcpts) {
      outcomes.push({
        rcpt,
        outcome: {
          type: "complained",
          reply,
          category: "complaint",
          suppress: {
            address: rcpt,
            reason: "complaint",
            source: "complaint",
            createdAt: now,
            msgId,
            reply,
          },
        },
      });
    }
  }

  let recorded = 0;
  const timeline = await listMessageEvents(deps.kv, msgId);
  for (const { rcpt, outcome } of outcomes) {
    const row = await findRow(deps.kv, msgId, rcpt);
    if (!row) continue;
    if (outcome.type === "bounced" && row.value.status === "bounced") continue;
    const seen = timeline.some((e) =>
      e.type === outcome.type && e.rcpt?.toLowerCase() === rcpt.toLowerCase()
    );
    if (seen) continue;
    const stamp = await deps.committer.commit(reportChange(msg, row, outcome, now));
    if (stamp === null) continue; // the row moved meanwhile: a concurrent copy of this report
    recorded++;
    if (outcome.suppress) {
      deps.suppressions?.remember(msg.account, outcome.suppress.address, outcome.suppress.reason);
    }
    deps.log.info("report.recorded", {
      msg: msgId,
      rcpt: row.value.rcpt,
      type: outcome.type,
      category: outcome.category,
    });
  }
  return recorded > 0
    ? { recorded }
    : { recorded, ignored: "already recorded or no such recipient" };
}
