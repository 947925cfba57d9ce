/**
 * A sliding-window count approximated from two fixed windows, as Cloudflare's and nginx's
 * shared rate limiters do: the previous window's count weighted by how much of it still lies
 * within one window of now, plus the current window's count. Each fixed window is one counter
 * that every node adds to without reading it first, so a limit shared by many nodes needs no
 * compare-and-set on one hot value.
 *
 * @module
 */

export interface WindowCounts {
  /** Events counted in the fixed window before the current one. */
  previous: number;
  /** Events counted in the current fixed window so far. */
  current: number;
}

/** Which fixed window `now` falls in, and how far into it (0 ≤ elapsed < 1). */
export function windowAt(now: number, windowMs: number): { index: number; elapsed: number } {
  const index = Math.floor(now / windowMs);
  return { index, elapsed: (now - index * windowMs) / windowMs };
}

/** The estimated number of events in the window of `windowMs` ending at `now`. */
export function slidingCount(counts: WindowCounts, now: number, windowMs: number): number {
  const { elapsed } = windowAt(now, windowMs);
  return counts.previous * (1 - elapsed) + counts.current;
}

/**
 * Whether one more event fits under `limit` per `windowMs`, and if not, how long until it
 * would (assuming no other event meanwhile).
 */
export function slidingTake(
  counts: WindowCounts,
  limit: number,
  now: number,
  windowMs: number,
): { allowed: true } | { allowed: false; retryAfterMs: number } {
  if (slidingCount(counts, now, windowMs) + 1 <= limit + 1e-9) return { allowed: true };
  const { index } = windowAt(now, windowMs);
  const start = index * windowMs;
  let at: number;
  if (counts.current + 1 > limit) {
    // Not in this window: in the next, where this window's count is the one that decays.
    at = start + windowMs + windowMs * (1 - (limit - 1) / counts.current);
  } else {
    at = start + windowMs * (1 - (limit - counts.current - 1) / counts.previous);
  }
  return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(at - now)) };
}
