/**
 * From what the remote side said about one recipient to what the queue records: delivered,
 * deferred until a time the retry schedule (or a greylist window) names, or bounced.
 */
import { classifyConnectionError, classifyReply, parseReply } from "./classify.ts";
import type { Classification } from "./classify.ts";
import { classifyDnsFailure, type DnsFailure } from "./dns_outcome.ts";
import { nextAttempt } from "./retry_schedule.ts";
import type { RecipientRow } from "../model.ts";
import type { RecipientResult } from "../store/deliveries.ts";

/**
 * A greylisting server is retried this long after the window it names, not at the window's
 * edge: its clock and ours differ, and a retry a second early restarts some greylisters' timers.
 */
export const GREYLIST_MARGIN_MS = 10_000;

export interface RetryPolicy {
  schedule: readonly number[];
  maxAgeMs: number;
  /** Sandbox mail (filed under the simulator domain) runs on its own short clock. */
  sandbox?: { domain: string; schedule: readonly number[]; maxAgeMs: number };
}

/** The policy for mail filed under `domain`. */
export function retryPolicyFor(policy: RetryPolicy, domain: string): RetryPolicy {
  return policy.sandbox && domain === policy.sandbox.domain ? policy.sandbox : policy;
}

/** What an attempt ended with: a server's reply, a connection failure, or a DNS answer. */
export type Outcome = {
  kind: "success" | "transient" | "permanent";
  /** The remote reply, or a description of the local/connection failure. */
  reply: string;
  code?: number;
  /** The attempt ended at DNS: the answer decides, not the wording of `reply`. */
  dns?: DnsFailure;
};

export function classifyOutcome(outcome: Outcome): Classification {
  if (outcome.dns !== undefined) return classifyDnsFailure(outcome.dns);
  if (outcome.code !== undefined) {
    try {
      return classifyReply(parseReply(outcome.reply));
    } catch {
      // fall through: not an SMTP reply after all
    }
  }
  // A connection failure is never permanent: no server judged the recipient.
  return classifyConnectionError({ message: outcome.reply });
}

export function decide(
  row: RecipientRow,
  outcome: Outcome,
  policy: RetryPolicy,
  now: number,
  options: {
    /** No retry before this (a warm-up plan with no room left until tomorrow). */
    notBefore?: number | undefined;
    /**
     * The failure came before any transaction (greeting, STARTTLS, AUTH): never a bounce, since
     * the recipient was not judged; a 5yz there defers with the category its text gives.
     */
    neverBounce?: boolean | undefined;
  } = {},
): RecipientResult {
  const { notBefore } = options;
  const base = {
    row,
    reply: outcome.reply,
    countsAsAttempt: true,
    ...(outcome.dns !== undefined ? { dnsCaused: true } : {}),
  };
  if (outcome.kind === "success") {
    return {
      ...base,
      status: "delivered",
      event: "delivered",
      category: null,
      nextAttemptAt: null,
    };
  }
  const c = classifyOutcome(outcome);
  if (!options.neverBounce && (outcome.kind === "permanent" || c.kind === "permanent")) {
    return {
      ...base,
      status: "bounced",
      event: "bounced",
      category: c.category ?? "other",
      nextAttemptAt: null,
    };
  }
  const next = nextAttempt({
    schedule: policy.schedule,
    failures: row.attempts + 1,
    queuedAt: row.queuedAt,
    now,
    maxAgeMs: policy.maxAgeMs,
    notBefore: Math.max(
      notBefore ?? 0,
      c.retryAfterMs !== undefined ? now + c.retryAfterMs + GREYLIST_MARGIN_MS : 0,
    ),
  });
  if (next.kind === "expire") {
    return {
      ...base,
      status: "bounced",
      event: "expired",
      category: "expired",
      nextAttemptAt: null,
    };
  }
  return {
    ...base,
    status: "deferred",
    event: "deferred",
    category: c.category ?? "other",
    nextAttemptAt: next.at,
  };
}
