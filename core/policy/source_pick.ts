/**
 * Which source address a connection to a site goes out from: a weighted random choice among a
 * pool's sources, skipping those whose warm-up cap for this site is used up today, and
 * preferring those the site has not recently blocked or rate-limited.
 *
 * Instead of removing a deprioritised source, we only try it when no other source is left, to
 * avoid a site's momentary push-back against one address stopping mail that could still go out.
 *
 * @module
 */

const DAY_MS = 86_400_000;

export interface WarmupPlan {
  /** First day of the plan, "YYYY-MM-DD" (UTC). */
  start: string;
  /** Cap for day 1, 2, … of the plan. */
  daily: readonly number[];
}

/** The plan's day (0 = its first day) that `now` falls on; negative before the start. */
export function warmupDay(plan: WarmupPlan, now: number): number {
  return Math.floor((now - Date.parse(`${plan.start}T00:00:00Z`)) / DAY_MS);
}

/**
 * Today's cap per site, or null once the plan is over (a warm address). Before its start day a
 * source gets the first day's cap, not unlimited volume.
 */
export function warmupCap(plan: WarmupPlan, now: number): number | null {
  const day = Math.max(0, warmupDay(plan, now));
  return day < plan.daily.length ? plan.daily[day]! : null;
}

/** The UTC day number of `now`, the key warm-up counters are kept under. */
export function utcDay(now: number): number {
  return Math.floor(now / DAY_MS);
}

/** When a source at its warm-up cap today may send again: the next UTC midnight. */
export function nextUtcDayStart(now: number): number {
  return (utcDay(now) + 1) * DAY_MS;
}

export interface SourceCandidate {
  address: string;
  weight: number;
  /** Sends left today at this site under the warm-up plan; null: no cap. */
  remaining: number | null;
  /** Until when this site pushed back against this address (ms); 0: never. */
  deprioritisedUntil: number;
}

/**
 * Picks a source: weighted among those with warm-up room and not deprioritised; if every source
 * with room is deprioritised, weighted among those. Returns null when no source has room left
 * today (the caller defers). `random` returns a number in [0, 1).
 */
export function pickSource(
  candidates: readonly SourceCandidate[],
  now: number,
  random: () => number = Math.random,
): string | null {
  const withRoom = candidates.filter((c) =>
    c.weight > 0 && (c.remaining === null || c.remaining > 0)
  );
  if (withRoom.length === 0) return null;
  const fresh = withRoom.filter((c) => c.deprioritisedUntil <= now);
  const pool = fresh.length > 0 ? fresh : withRoom;
  const total = pool.reduce((s, c) => s + c.weight, 0);
  let r = random() * total;
  for (const c of pool) {
    r -= c.weight;
    if (r < 0) return c.address;
  }
  return pool[pool.length - 1]!.address;
}
