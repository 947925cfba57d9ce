/**
 * What operators do with held mail (http/holds.ts) and what happens to mail nobody touches:
 * release (queue it and wake the delivery side), drop, recheck (scan the stored message again
 * with rspamd's current rules and the account's current policy, and act on the answer), and the
 * expiry sweep that drops holds older than POSTERN_HOLD_EXPIRY.
 *
 * @module
 */
import type { Committer } from "../store/committer.ts";
import {
  dropHold,
  expireHolds,
  getHold,
  type HoldOutcome,
  type HoldRecord,
  releaseHold,
  updateHold,
} from "../store/holds.ts";
import { readBody, withPrefix } from "../store/bodies.ts";
import { listRows, loadMessage } from "../store/queue.ts";
import { contentPolicyOf, getAccount } from "../store/accounts.ts";
import { decideContent } from "../policy/content_policy.ts";
import type { QueueSignal } from "../queue_signal.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Scanner } from "./gate.ts";

export interface HoldQueueDeps {
  kv: Deno.Kv;
  committer: Committer;
  signal: QueueSignal;
  log: Logger;
  /** rspamd, for rechecks; null when filtering is off (a recheck then answers "unavailable"). */
  scanner: Scanner | null;
  now?: () => number;
}

export type RecheckResult =
  | { outcome: "released" | "dropped"; score: number; symbols: string[] }
  | { outcome: "held"; score: number; symbols: string[]; hold: HoldRecord }
  | { outcome: "failed"; reason: "not_found" | "conflict" }
  | { outcome: "unavailable"; error: string };

export class HoldQueue {
  constructor(readonly deps: HoldQueueDeps) {}

  #now() {
    return (this.deps.now ?? Date.now)();
  }

  get(id: string): Promise<HoldRecord | null> {
    return getHold(this.deps.kv, id);
  }

  /** Queues the held message for delivery (event `released`) and wakes the delivery side. */
  async release(id: string): Promise<HoldOutcome> {
    const r = await releaseHold(this.deps.kv, this.deps.committer, id, this.#now());
    if (r.ok) {
      metrics.holdOutcomes.inc({ outcome: "released" });
      this.deps.log.info("hold.released", { msg: id, rcpts: r.rows.length });
      if (r.rows.length > 0) {
        this.deps.signal.notify({
          msg: r.msg,
          rows: r.rows,
          versionstamp: r.versionstamp,
          due: r.due,
          staged: false,
        });
      }
    }
    return r;
  }

  /** Drops the held message (event `dropped`): nothing is sent. */
  async drop(id: string, why = "Dropped from the hold queue by an operator"): Promise<HoldOutcome> {
    const r = await dropHold(this.deps.kv, this.deps.committer, id, this.#now(), why);
    if (r.ok) {
      metrics.holdOutcomes.inc({ outcome: "dropped" });
      this.deps.log.info("hold.dropped", { msg: id, why });
    }
    return r;
  }

  /**
   * Scans the stored message again and acts on the answer as intake would have: below the hold
   * score it is released, at the reject score dropped, and in between it stays held with its new
   * score and symbols.
   */
  async recheck(id: string): Promise<RecheckResult> {
    const { deps } = this;
    const hold = await getHold(deps.kv, id);
    const msg = hold ? await loadMessage(deps.kv, id) : null;
    if (!hold || !msg) return { outcome: "failed", reason: "not_found" };
    if (!deps.scanner) return { outcome: "unavailable", error: "content filtering is off" };
    let result;
    try {
      result = await deps.scanner.check({
        mailFrom: msg.mailFrom,
        recipients: (await listRows(deps.kv, id)).map((r) => r.rcpt),
        clientAddress: msg.clientAddress,
        heloName: "recheck",
        user: msg.credentialId,
        queueId: msg.id,
        body: () =>
          withPrefix(msg.prefix, readBody(deps.kv, msg)) as AsyncIterable<
            Uint8Array
          >,
      });
    } catch (err) {
      return { outcome: "unavailable", error: (err as Error).message };
    }
    const policy = contentPolicyOf(await getAccount(deps.kv, msg.account));
    const decision = decideContent(policy, result);
    const seen = { score: result.score, symbols: result.symbols.map((s) => s.name) };
    deps.log.info("hold.rechecked", { msg: id, score: result.score, decision: decision.action });
    if (decision.action === "reject") {
      const r = await this.drop(id, `Dropped on recheck: ${decision.reason}`);
      return r.ok ? { outcome: "dropped", ...seen } : { outcome: "failed", reason: r.reason };
    }
    if (decision.action === "hold") {
      const updated = await updateHold(deps.kv, id, { ...seen, recheckedAt: this.#now() });
      return updated
        ? { outcome: "held", ...seen, hold: updated }
        : { outcome: "failed", reason: "conflict" };
    }
    const r = await this.release(id);
    return r.ok ? { outcome: "released", ...seen } : { outcome: "failed", reason: r.reason };
  }

  /** Drops every hold past its expiry (event `dropped`). */
  async expire(): Promise<number> {
    const dropped = await expireHolds(this.deps.kv, this.deps.committer, this.#now());
    for (const id of dropped) {
      metrics.holdOutcomes.inc({ outcome: "expired" });
      this.deps.log.info("hold.expired", { msg: id });
    }
    return dropped.length;
  }
}
