/**
 * A credential's `rate_limit` and `daily_quota`, asked through core/send_scope.ts (SMTP MAIL FROM
 * and RCPT TO, an HTTP send). Over either, the sender hears a temporary refusal (451 4.7.0 /
 * HTTP 429). Both are counted in the store, so they hold across every node sharing it and across
 * restarts.
 *
 * - The daily quota counts recipients, not messages (a quota of 1 must not carry one message to
 *   a thousand people), in KV (store/send_counts.ts, a sum in the message's own commit).
 *   Concurrent transactions of one credential may overshoot it by at most the recipients in
 *   flight, since each message is counted when it is accepted.
 * - The rate counts messages let through, in fixed windows of the rate's period combined into a
 *   sliding one (core/policy/sliding_window.ts): "100/min" lets 100 through back to back, then
 *   more as the minute slides. Each let-through is one `sum` commit, which never conflicts with
 *   another node's, so a busy credential is not one contended key. Nodes deciding at the same
 *   moment may each let the last one through: the overshoot is at most one per node.
 *
 * @module
 */
import type { Credential } from "./store/credentials.ts";
import { acceptedOn } from "./store/send_counts.ts";
import { countInWindow, readWindows } from "./store/window_counts.ts";
import { slidingTake } from "./policy/sliding_window.ts";
import { parseRate, type Rate } from "./policy/duration.ts";

export type Allowance =
  | { ok: true }
  | { ok: false; reason: "rate" | "quota"; retryAfterMs: number };

const DAY_MS = 86_400_000;
const RATE_SCOPE = "cred_rate";

export class SendLimits {
  #kv: Deno.Kv;
  #now: () => number;
  /** Parsed rates by their text: a credential's rate is parsed once, not per message. */
  #parsed = new Map<string, Rate>();

  constructor(kv: Deno.Kv, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  /** Whether `recipients` more fit in what is left of today's quota. */
  async quota(credential: Credential, recipients: number): Promise<Allowance> {
    if (credential.dailyQuota === null) return { ok: true };
    const now = this.#now();
    const sent = await acceptedOn(this.#kv, credential.id, now);
    if (sent + recipients > credential.dailyQuota) {
      return { ok: false, reason: "quota", retryAfterMs: DAY_MS - (now % DAY_MS) };
    }
    return { ok: true };
  }

  /** Takes one message from the rate, shared by every node, when it allows one. */
  async take(credential: Credential): Promise<Allowance> {
    if (credential.rateLimit === null) return { ok: true };
    const now = this.#now();
    const rate = this.#rate(credential.rateLimit);
    const counter = { scope: RATE_SCOPE, id: credential.id, windowMs: rate.perMs };
    const verdict = slidingTake(
      await readWindows(this.#kv, counter, now),
      rate.count,
      now,
      rate.perMs,
    );
    if (!verdict.allowed) return { ok: false, reason: "rate", retryAfterMs: verdict.retryAfterMs };
    await countInWindow(this.#kv, counter, now);
    return { ok: true };
  }

  #rate(text: string): Rate {
    let rate = this.#parsed.get(text);
    if (!rate) {
      rate = parseRate(text);
      if (this.#parsed.size > 1_000) this.#parsed.clear();
      this.#parsed.set(text, rate);
    }
    return rate;
  }
}
