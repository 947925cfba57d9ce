/**
 * A credential's `rate_limit` and `daily_quota`, asked through core/send_scope.ts (SMTP MAIL FROM
 * and RCPT TO, an HTTP send). Over either, the sender hears a temporary refusal (451 4.7.0 /
 * HTTP 429).
 *
 * - The daily quota counts recipients, not messages (a quota of 1 must not carry one message to
 *   a thousand people). It counts in KV (store/send_counts.ts): a quota is a contract, so it must hold
 *   across nodes and restarts. Concurrent transactions of one credential may overshoot it by
 *   at most the recipients in flight, since each message is counted when it is accepted.
 * - The rate is kept in memory, per process (so per node: N nodes let up to N× the rate
 *   through). Instead of a compare-and-set on a KV value per message, which would add a commit
 *   (an fsync) to every transaction that group commit exists to avoid, we accept that
 *   smoothing is per node and that a restart forgets it. GCRA (core/policy/gcra.ts) with a
 *   burst of the whole count: "100/min" lets 100 through back to back, then one per 600 ms.
 *
 * @module
 */
import type { Credential } from "./store/credentials.ts";
import { acceptedOn } from "./store/send_counts.ts";
import { type GcraState, gcraTake } from "./policy/gcra.ts";
import { parseRate, type Rate } from "./policy/duration.ts";

export type Allowance =
  | { ok: true }
  | { ok: false; reason: "rate" | "quota"; retryAfterMs: number };

const DAY_MS = 86_400_000;
const MAX_TRACKED = 10_000;

export class SendLimits {
  #kv: Deno.Kv;
  #now: () => number;
  #rates = new Map<string, { text: string; rate: Rate; state: GcraState }>();

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

  /** Takes one message from the rate, when it allows one. */
  take(credential: Credential): Allowance {
    if (credential.rateLimit === null) return { ok: true };
    const now = this.#now();
    let entry = this.#rates.get(credential.id);
    if (!entry || entry.text !== credential.rateLimit) {
      entry = {
        text: credential.rateLimit,
        rate: parseRate(credential.rateLimit),
        state: { tat: now },
      };
      this.#rates.set(credential.id, entry);
      this.#forgetIdle(now);
    }
    const result = gcraTake(entry.state, entry.rate, now, entry.rate.count);
    if (!result.allowed) return { ok: false, reason: "rate", retryAfterMs: result.retryAfterMs };
    entry.state = result.state;
    return { ok: true };
  }

  /** Drops limiters that have drained back to a full burst: they hold no information. */
  #forgetIdle(now: number) {
    if (this.#rates.size <= MAX_TRACKED) return;
    for (const [id, entry] of this.#rates) if (entry.state.tat <= now) this.#rates.delete(id);
  }
}
