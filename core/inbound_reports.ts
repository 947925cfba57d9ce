/**
 * What happens when a report reaches the bounce domain: find the delivery through its VERP
 * return path (core/mail/verp.ts: message and recipient, under a MAC), then record that
 * recipient, and only it, as `bounced` (suppressing a bad address, as a bounce during delivery
 * would) or `complained` (suppressing the address: a recipient who reported the mail as spam must
 * not get more). Reports that name no delivery of ours, or that we already recorded, change
 * nothing; a report carrying a return path whose MAC fails is dropped and logged.
 */
import type { Committer } from "./store/committer.ts";
import type { Logger } from "./log.ts";
import { type DsnRecipient, parseReport, type Report } from "./mail/reports.ts";
import { parseVerp, type VerpConfig, type VerpTarget } from "./mail/verp.ts";
import { classifyReply } from "./policy/classify.ts";
import { bounceSuppresses } from "./policy/dns_outcome.ts";
import { loadMessage } from "./store/queue.ts";
import { reportChange, reportedRow, type ReportOutcome } from "./store/reports.ts";
import { listMessageEvents } from "./store/events.ts";

export interface ReportDeps {
  kv: Deno.Kv;
  committer: Committer;
  verp: VerpConfig;
  log: Logger;
  now(): number;
  /** The list a suppressed address goes on; default the account's own. */
  listFor?: (account: string, address: string) => string;
  /** This node's suppression cache, told at once (other nodes reload it on their poll). */
  suppressions?: { remember(account: string, address: string, reason: string): void };
}

export interface ReportResult {
  /** Recipients whose state changed. */
  recorded: number;
  /** Why nothing was recorded, when nothing was. */
  ignored?: string;
}

/**
 * The delivery a report is about, from the return paths it carries: the address it was sent to,
 * and the original envelope sender an ARF report or the attached header section names. Any
 * VERP-shaped one that fails its MAC makes the whole report a forgery.
 */
function locate(
  report: Report,
  envelopeRecipients: readonly string[],
  verp: VerpConfig,
): { target: VerpTarget } | { forged: string } | null {
  const candidates = [
    ...envelopeRecipients,
    ...(report.kind === "arf" && report.originalMailFrom ? [report.originalMailFrom] : []),
    ...report.originalHeaders.filter((f) => f.name === "return-path").map((f) =>
      f.value.trim().replace(/^<|>$/g, "")
    ),
  ];
  let target: VerpTarget | null = null;
  for (const c of candidates) {
    const found = parseVerp(c, verp);
    if (found === "forged") return { forged: c };
    target ??= found;
  }
  return target ? { target } : null;
}

/** What a DSN says about the delivery its return path names (the one whose return path it is). */
function dsnFor(report: Extract<Report, { kind: "dsn" }>, rcpt: string): DsnRecipient | null {
  const failed = report.recipients.filter((r) => r.action === "failed");
  // A forwarded address fails under its final name: the return path still says whose it was.
  return failed.find((r) => r.recipient.toLowerCase() === rcpt.toLowerCase()) ??
    (failed.length === 1 ? failed[0]! : null);
}

function outcomeOf(report: Report, rcpt: string, msgId: string, now: number): ReportOutcome | null {
  if (report.kind === "dsn") {
    const r = dsnFor(report, rcpt);
    if (!r) return null; // delayed, delivered, relayed: nothing to record
    const status = /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status) ? r.status : "5.0.0";
    const text = r.diagnostic ?? "";
    const category = classifyReply({
      code: status.startsWith("4") ? 450 : 550,
      enhanced: status,
      text,
    }).category ?? "other";
    const reply = `asynchronous bounce: ${status} ${text}`.trim();
    return {
      type: "bounced",
      reply,
      category,
      suppress: bounceSuppresses(category)
        ? { address: rcpt, reason: category, source: "bounce", createdAt: now, msgId, reply }
        : null,
    };
  }
  if (report.feedbackType === "not-spam") return null;
  const reply = `feedback report: ${report.feedbackType}`;
  return {
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
  };
}

export async function acceptReport(
  deps: ReportDeps,
  envelopeRecipients: readonly string[],
  raw: Uint8Array,
): Promise<ReportResult> {
  const report = parseReport(raw);
  if (!report) return { recorded: 0, ignored: "not a delivery status or feedback report" };
  const located = locate(report, envelopeRecipients, deps.verp);
  if (!located) return { recorded: 0, ignored: "names no message of ours" };
  if ("forged" in located) {
    deps.log.warn("report.forged", { return_path: located.forged.slice(0, 100) });
    return { recorded: 0, ignored: "a return path fails its MAC" };
  }
  return await recordReport(deps, located.target, report);
}

/**
 * Records a parsed report about one delivery: found through its VERP return path, or known to
 * the sandbox's simulated MX that received it.
 */
export async function recordReport(
  deps: Omit<ReportDeps, "verp">,
  target: VerpTarget,
  report: Report,
): Promise<ReportResult> {
  const { msgId, idx } = target;
  const msg = await loadMessage(deps.kv, msgId);
  if (!msg) return { recorded: 0, ignored: `message ${msgId} is no longer stored` };
  // The report is about the recipient its return path names, and no other: whatever addresses
  // its text lists, one recipient cannot bounce or complain for another.
  const row = await reportedRow(deps.kv, msgId, idx);
  if (!row) return { recorded: 0, ignored: "the return path names no single recipient" };
  const now = deps.now();
  const outcome = outcomeOf(report, row.value.rcpt, msgId, now);
  if (!outcome) return { recorded: 0, ignored: "reports no failure or complaint" };

  const ignored = { recorded: 0, ignored: "already recorded" };
  if (outcome.type === "bounced" && row.value.status === "bounced") return ignored;
  const timeline = await listMessageEvents(deps.kv, msgId);
  const rcpt = row.value.rcpt.toLowerCase();
  if (timeline.some((e) => e.type === outcome.type && e.rcpt?.toLowerCase() === rcpt)) {
    return ignored;
  }
  const list = deps.listFor?.(msg.account, row.value.rcpt) ?? msg.account;
  if (list !== msg.account) outcome.list = list;
  const stamp = await deps.committer.commit(reportChange(msg, row, outcome, now));
  if (stamp === null) return ignored; // the row moved meanwhile: a concurrent copy of this report
  if (outcome.suppress) {
    deps.suppressions?.remember(list, outcome.suppress.address, outcome.suppress.reason);
  }
  deps.log.info("report.recorded", {
    msg: msgId,
    rcpt: row.value.rcpt,
    type: outcome.type,
    category: outcome.category,
  });
  return { recorded: 1 };
}
