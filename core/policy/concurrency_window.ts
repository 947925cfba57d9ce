/**
 * How many deliveries may run at once to one destination site, learned from how it answers.
 *
 * Modelled on Postfix's per-destination concurrency window (SCHEDULER_README, "Concurrency
 * scheduling"): start at a modest concurrency, grow while deliveries succeed, shrink when the
 * site pushes back. Whether a site is down altogether is a separate question (dead-destination
 * detection in Postfix, site suspension in our actors) and does not live here.
 *
 * Postfix grows and shrinks by 1/concurrency per delivery. Instead, we grow by one per success
 * and halve on a throttling reply (additive increase, multiplicative decrease, as TCP does), with
 * a cooldown after each halving, to avoid creeping straight back to the concurrency the site
 * just told us was too high.
 *
 * @module
 */

/** One site's window. */
export interface Window {
  /** Deliveries allowed in flight now; between 1 and the configured maximum. */
  limit: number;
  /** Deliveries in flight now; kept by {@linkcode tryAcquire} and {@linkcode release}. */
  current: number;
  /** Until this time (ms) the limit does not grow and is not halved again. */
  cooldownUntil: number;
}

/** Postfix's `initial_destination_concurrency` default. */
export const DEFAULT_INITIAL_CONCURRENCY = 5;

/**
 * A fresh window for a site, starting at `initial` (capped at `max`), with nothing in flight.
 *
 * @throws {Error} when `max` or `initial` is not an integer ≥ 1.
 */
export function initialWindow(max: number, initial = DEFAULT_INITIAL_CONCURRENCY): Window {
  for (const [name, value] of [["max", max], ["initial", initial]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(
        `Cannot create concurrency window as '${name}' must be an integer >= 1: current value is ${value}`,
      );
    }
  }
  return { limit: Math.min(initial, max), current: 0, cooldownUntil: 0 };
}

/**
 * After a successful delivery: the limit grows by one, up to `max`, unless the site is cooling
 * down. A limit above `max` (the maximum was lowered since) comes down to `max` at once.
 */
export function onSuccess(w: Window, max: number, now: number): Window {
  const grown = now < w.cooldownUntil ? w.limit : w.limit + 1;
  return { ...w, limit: Math.max(1, Math.min(grown, max)) };
}

/**
 * After a throttling reply (421, 4.7.x rate limits, "too many connections"): the limit halves,
 * never below 1, and a cooldown of `cooldownMs` starts.
 *
 * Instead of halving on every throttling reply, we halve once per cooldown and only extend it
 * for replies that arrive during one, to avoid collapsing the window to 1 when the deliveries
 * already in flight all report the same push-back.
 */
export function onThrottle(w: Window, now: number, cooldownMs: number): Window {
  const cooldownUntil = Math.max(w.cooldownUntil, now + cooldownMs);
  if (now < w.cooldownUntil) return { ...w, cooldownUntil };
  return { ...w, limit: Math.max(1, Math.floor(w.limit / 2)), cooldownUntil };
}

/**
 * Takes a slot for one delivery: the window with one more in flight, or `undefined` when the
 * window is full (which it also is when the limit shrank below what is already in flight).
 */
export function tryAcquire(w: Window): Window | undefined {
  return w.current < w.limit ? { ...w, current: w.current + 1 } : undefined;
}

/** Gives back the slot of a finished delivery, whatever its outcome. */
export function release(w: Window): Window {
  return { ...w, current: Math.max(0, w.current - 1) };
}
