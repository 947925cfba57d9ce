/**
 * When to try a deferred message again, and when to give up on it.
 *
 * RFC 5321 §4.5.4.1 asks for a retry interval of at least 30 minutes and a give-up time of at
 * least 4–5 days. We start sooner than that (greylisting usually clears within minutes) and back
 * off to hours, which is what Postfix's and KumoMTA's exponential schedules converge on too.
 *
 * @module
 */

import { parseDuration } from "./duration.ts";

/** A sensible MTA schedule: quick retries for greylisting, then hours. The last entry repeats. */
export const DEFAULT_RETRY_SCHEDULE = "1m,5m,15m,30m,1h,2h,4h,8h";

/**
 * Parses a comma-separated list of delays, such as "1m,5m,15m,1h,4h", into milliseconds.
 *
 * @throws {Error} naming the first item that is empty, unparsable or not positive.
 */
export function parseRetrySchedule(text: string): number[] {
  const items = text.split(",").map((item) => item.trim());
  return items.map((item, index) => {
    const where = `item ${index + 1} ("${item}")`;
    let delay: number;
    try {
      delay = parseDuration(item);
    } catch (cause) {
      throw new Error(
        `Cannot parse retry schedule "${text}": ${where} is not a duration such as "5m"`,
        { cause },
      );
    }
    // A zero delay would retry in a tight loop against a server that just said "not now".
    if (delay <= 0) {
      throw new Error(`Cannot parse retry schedule "${text}": ${where} must be longer than 0`);
    }
    return delay;
  });
}

/**
 * The delay after the `failures`-th failed attempt (1 is the first failure). Past the end of
 * the schedule the last entry repeats, so the schedule never runs out before the message expires.
 *
 * @throws {Error} when the schedule is empty or `failures` is not an integer ≥ 1.
 */
export function retryDelay(schedule: readonly number[], failures: number): number {
  if (schedule.length === 0) {
    throw new Error("Cannot compute retry delay as the schedule is empty");
  }
  if (!Number.isInteger(failures) || failures < 1) {
    throw new Error(
      `Cannot compute retry delay as 'failures' must be an integer >= 1: current value is ${failures}`,
    );
  }
  return schedule[Math.min(failures, schedule.length) - 1]!;
}

/** What to do with a message after a transient failure. */
export type NextAttempt = { kind: "retry"; at: number } | { kind: "expire" };

/**
 * Decides when a message that just failed transiently is tried again, or that it expires.
 *
 * - `at` is `max(now + retryDelay(schedule, failures), notBefore ?? 0)`; `notBefore` carries a
 *   wait the server asked for (a greylist window) or a site suspension.
 * - Once `now >= queuedAt + maxAgeMs` the message expires (RFC 5321 §4.5.4.1 give-up time).
 * - If `at` lies past the deadline, instead of expiring early we schedule one final attempt at
 *   exactly the deadline, to avoid bouncing a message that still had hours of lifetime and might
 *   have gone through; that attempt's failure then lands on `now >= deadline` and expires.
 */
export function nextAttempt(o: {
  schedule: readonly number[];
  failures: number;
  queuedAt: number;
  now: number;
  maxAgeMs: number;
  notBefore?: number | undefined;
}): NextAttempt {
  const deadline = o.queuedAt + o.maxAgeMs;
  if (o.now >= deadline) return { kind: "expire" };
  const at = Math.max(o.now + retryDelay(o.schedule, o.failures), o.notBefore ?? 0);
  return { kind: "retry", at: Math.min(at, deadline) };
}
