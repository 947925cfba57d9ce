/**
 * The content gate intake calls once a message is whole (line endings normalised, headers
 * completed, DKIM signed) and before it commits and answers 250: rspamd scans the message as it
 * will be sent, the account's content policy decides (core/policy/content_policy.ts), and the
 * abuse brake counts what was refused or held against the credential. Metrics and per-account
 * counters record every scan, its outcome and how long it took.
 *
 * @module
 */
import type { Committer } from "../store/committer.ts";
import { contentPolicyOf, getAccount } from "../store/accounts.ts";
import { isSuspended, suspendCredential } from "../store/credentials.ts";
import { recordStrike, recordSuspensionEvent } from "../store/content_strikes.ts";
import { countScan } from "../store/stats.ts";
import { decideContent } from "../policy/content_policy.ts";
import { metrics } from "../metrics.ts";
import type { Logger } from "../log.ts";
import type { RspamdResult, ScanRequest } from "./rspamd.ts";
import { spamHeaders } from "./spam_headers.ts";

export interface Scanner {
  check(req: ScanRequest): Promise<RspamdResult>;
}

export interface ContentGateDeps {
  kv: Deno.Kv;
  committer: Committer;
  scanner: Scanner;
  log: Logger;
  /** How long held mail waits for an operator (POSTERN_HOLD_EXPIRY). */
  holdExpiryMs: number;
  /** More than `limit` rejected or held messages within `windowMs` suspend a credential; 0 = off. */
  brake: { limit: number; windowMs: number };
  now?: () => number;
}

export interface GateInput extends ScanRequest {
  account: string;
}

export type ContentVerdict =
  /** Queue it; `headers` (CRLF-ended fields, maybe "") go in front of the message. */
  | { action: "accept"; headers: string }
  | { action: "hold"; score: number; symbols: string[]; expiresAt: number }
  | { action: "reject"; reason: string }
  | { action: "tempfail" };

export class ContentGate {
  constructor(readonly deps: ContentGateDeps) {}

  #now() {
    return (this.deps.now ?? Date.now)();
  }

  /** Scans and decides; never throws for an rspamd failure (that is the policy's on_error). */
  async scan(input: GateInput): Promise<ContentVerdict> {
    const { deps } = this;
    const started = performance.now();
    const policy = contentPolicyOf(await getAccount(deps.kv, input.account));
    let result: RspamdResult | null = null;
    let error: string | null = null;
    try {
      result = await deps.scanner.check(input);
    } catch (err) {
      error = (err as Error).message;
    }
    const ms = performance.now() - started;
    metrics.contentScanSeconds.observe(ms / 1000);
    const decision = decideContent(policy, result ?? { error: error ?? "no answer" });
    const fields = {
      msg: input.queueId,
      account: input.account,
      credential: input.user,
      ms: Math.round(ms),
      ...(result ? { score: result.score, action: result.action } : {}),
    };
    const at = this.#now();
    const stat = decision.action === "reject"
      ? "rejected"
      : decision.action === "hold"
      ? "held"
      : result === null
      ? "scan_failed"
      : null;
    await countScan(deps.kv, input.account, at, stat, ms).catch((err) =>
      deps.log.warn("content.count_failed", { err })
    );
    switch (decision.action) {
      case "accept_unscanned":
      case "tempfail":
        metrics.contentScans.inc({ result: "error" });
        deps.log.warn("content.scan_failed", { error, on_error: decision.action, ...fields });
        return decision.action === "tempfail"
          ? { action: "tempfail" }
          : { action: "accept", headers: "" };
      case "reject":
        metrics.contentScans.inc({ result: "reject" });
        deps.log.info("content.rejected", { reason: decision.reason, ...fields });
        await this.#strike(input);
        return decision;
      case "hold": {
        metrics.contentScans.inc({ result: "hold" });
        deps.log.info("content.held", fields);
        await this.#strike(input);
        return {
          action: "hold",
          score: result!.score,
          symbols: result!.symbols.map((s) => s.name),
          expiresAt: at + deps.holdExpiryMs,
        };
      }
      case "accept":
        metrics.contentScans.inc({ result: "accept" });
        deps.log.debug("content.passed", fields);
        return { action: "accept", headers: decision.addHeaders ? spamHeaders(result!) : "" };
    }
  }

  /** The abuse brake: counts a refused or held message against its credential. */
  async #strike(input: GateInput) {
    const { deps } = this;
    const { limit, windowMs } = deps.brake;
    if (limit <= 0 || !input.user) return;
    try {
      const now = this.#now();
      const strikes = await recordStrike(deps.kv, input.user, input.queueId, now, windowMs);
      if (strikes <= limit) return;
      const reason = `${strikes} messages rejected or held by the content filter within ${
        Math.round(windowMs / 1000)
      } s (limit ${limit})`;
      const suspended = await suspendCredential(deps.kv, input.user, reason, now);
      if (!suspended || !isSuspended(suspended)) return;
      metrics.credentialsSuspended.inc();
      deps.log.warn("credential.suspended", { credential: input.user, reason });
      await recordSuspensionEvent(deps.committer, input.account, {
        msgId: input.queueId,
        at: now,
        reply: `Credential ${input.user} suspended: ${reason}`,
      });
    } catch (err) {
      deps.log.error("content.brake_failed", { err, credential: input.user });
    }
  }
}
