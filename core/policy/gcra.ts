/**
 * Rate limiting with the Generic Cell Rate Algorithm (ITU-T I.371), as pure data.
 *
 * Instead of a token bucket, which needs a token count and a refill timestamp updated together,
 * GCRA keeps one number, the theoretical arrival time (TAT) of the next event if events came
 * exactly at the rate. One number fits one KV value and one compare-and-set, and there is no
 * refill arithmetic to get wrong.
 *
 * @module
 */

import type { Rate } from "./duration.ts";

/** Limiter state for one key: the theoretical arrival time of the next event, in ms. */
export interface GcraState {
  tat: number;
}

/** The verdict of {@linkcode gcraTake}. */
export interface GcraResult {
  /** Whether the event may happen now. */
  allowed: boolean;
  /** The state to store; the input is never mutated. */
  state: GcraState;
  /** When denied, how long until the event would be allowed; 0 when allowed. */
  retryAfterMs: number;
}

/**
 * Asks to let one event through at `now` under `rate`.
 *
 * `burst` is how many events may pass back to back after a quiet spell. It defaults to 1:
 * events are spaced evenly, one every `rate.perMs / rate.count` ms. Instead of letting "100/min"
 * mean a hundred messages in the first second of each minute, we spread them out, to avoid the
 * spikes that large receivers answer with 421 and 4.7.x deferrals; pass a larger burst where a
 * destination is known to tolerate one. Unused time does not accumulate beyond the burst.
 *
 * @throws {Error} when the rate is not positive or `burst` is not an integer ≥ 1.
 */
export function gcraTake(
  state: GcraState | undefined,
  rate: Rate,
  now: number,
  burst = 1,
): GcraResult {
  if (!(rate.count > 0 && rate.perMs > 0 && Number.isFinite(rate.count / rate.perMs))) {
    throw new Error(
      `Cannot take from rate limiter as the rate must be positive: current value is ${rate.count}/${rate.perMs}ms`,
    );
  }
  if (!Number.isInteger(burst) || burst < 1) {
    throw new Error(
      `Cannot take from rate limiter as 'burst' must be an integer >= 1: current value is ${burst}`,
    );
  }
  const interval = rate.perMs / rate.count;
  const tolerance = (burst - 1) * interval;
  const tat = Math.max(state?.tat ?? now, now);
  const allowedFrom = tat - tolerance;
  if (now < allowedFrom) {
    return { allowed: false, state: { tat }, retryAfterMs: Math.ceil(allowedFrom - now) };
  }
  return { allowed: true, state: { tat: tat + interval }, retryAfterMs: 0 };
}
