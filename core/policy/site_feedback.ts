/**
 * What a site's answers mean for how fast it is sent to: the shaping decisions the site actor
 * applies (actors/site/shaping.ts). A throttling reply shrinks the window and slows the rate for a
 * cool-down (concurrency_window.ts); a delivery grows the window; a policy block sends the source
 * address to the back of the line at that site.
 */
import type { Rate } from "./duration.ts";

/** The parts of a recipient's recorded result shaping reads. */
export interface ResultSignal {
  status: string;
  category: string | null;
}

export interface Feedback {
  /** The site asked us to slow down: halve the window, slow the rate, note the source. */
  throttled: boolean;
  /** Something was delivered and nothing throttled: the window may grow. */
  succeeded: boolean;
  /** The site blocked the source address: try it last here for a while. */
  sourceBlocked: boolean;
}

export function feedbackOf(results: readonly ResultSignal[]): Feedback {
  const throttled = results.some((r) => r.category === "throttled");
  return {
    throttled,
    succeeded: !throttled && results.some((r) => r.status === "delivered"),
    sourceBlocked: results.some((r) => r.category === "policy_block"),
  };
}

/**
 * The message rate in force while the site cools down after push-back: half the profile's rate
 * when it sets one, else the profile's backoff rate.
 */
export function backoffRate(base: Rate | null, backoff: Rate | null): Rate | null {
  return base ? { count: base.count, perMs: base.perMs * 2 } : backoff;
}
