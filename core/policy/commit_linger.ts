/**
 * How long a group commit waits for company before it starts. Every commit is an fsync and a
 * WAL append of every B-tree page its changes touch: a commit that carries one message writes
 * nearly as many pages as one that carries four (the root and interior pages, the right edges of
 * the event log and the indexes, the page counter). At saturation commits fill by themselves
 * while the previous one runs; at half that rate each message got a commit of its own and the
 * store wrote twice the bytes per message (bench/README.md, "A commit waits for company").
 *
 * So a commit that would carry fewer than `target` changes waits, but only while changes have
 * been arriving closely enough that company is likely within the wait: a lone change (an idle
 * relay, a test) is committed at once, and no change waits for company more than `maxMs` after
 * it arrived (time it spent queued behind the previous commit counts). And only while others are
 * sending at once (`othersSending`): a caller that commits step after step arrives closely too.
 *
 * @module
 */

/** Changes a commit is worth waiting for: about four one-recipient messages (intake, outcome). */
export const LINGER_TARGET_CHANGES = 16;

/**
 * Whether a batch may wait for company at all: when it holds a change that came while the
 * previous commit was written (whose caller was not waiting for that commit), or when the
 * previous batch had company. A caller that commits step after step shows neither: each change
 * comes after its last one landed, alone. The second clause matters below saturation: there the
 * committer is often idle when a change comes, and without it that change went alone, half the
 * commits at half the bench's rate carrying one message (bench/README.md, "A commit waits for
 * company"). It does not outlast a pause: a batch that went alone ends it.
 */
export function othersSending(
  batchHasChangeBehind: boolean,
  lastBatchHadCompany: boolean,
): boolean {
  return batchHasChangeBehind || lastBatchHadCompany;
}

/** Commits remembered for how many callers wait on the store at once. */
export const CALLERS_WINDOW = 8;

/**
 * The most changes a commit can expect to gather: the most callers seen waiting on the store at
 * once over the last `CALLERS_WINDOW` commits (a commit's own changes and those that came while
 * it was written), at most `LINGER_TARGET_CHANGES`, and 1 before any was seen. A caller waiting
 * for its commit sends nothing more, so once every caller seen lately is queued no company is
 * coming: one app sending message after message on one connection, with each message's delivery,
 * is two callers, and each of its messages waited the whole bound for a third (52 instead of 194
 * messages a second on one connection at a 20 ms bound).
 */
export function companyTarget(recentCallers: readonly number[]): number {
  let most = 1;
  for (const n of recentCallers) most = Math.max(most, n);
  return Math.min(LINGER_TARGET_CHANGES, most);
}

/** The arrival gaps seen lately, smoothed. */
export interface ArrivalGaps {
  /** When the last change arrived (ms), or null before the first. */
  last: number | null;
  /** The smoothed gap between arrivals (ms), or null before the second. */
  gapMs: number | null;
  /** The gap before the last arrival (ms), or null before the second. */
  lastGapMs: number | null;
}

export const NO_ARRIVALS: ArrivalGaps = { last: null, gapMs: null, lastGapMs: null };

/** A longer gap is smoothed in as this long: a pause says "sparse", however long it was. */
const LONGEST_GAP_MS = 100;

/**
 * The gaps after a change arrived at `now`, smoothed by an eighth: steady enough that one late
 * arrival does not stop the waits of a busy relay, and a burst after a pause is seen within a few
 * tens of arrivals.
 */
export function noteArrival(gaps: ArrivalGaps, now: number): ArrivalGaps {
  if (gaps.last === null) return { last: now, gapMs: null, lastGapMs: null };
  const lastGapMs = Math.max(0, now - gaps.last);
  const sample = Math.min(LONGEST_GAP_MS, lastGapMs);
  const gapMs = gaps.gapMs === null ? sample : gaps.gapMs + (sample - gaps.gapMs) / 8;
  return { last: now, gapMs, lastGapMs };
}

/**
 * How long (ms) a commit of `queued` changes, the oldest queued `oldestAgeMs` ago, waits for more
 * before it starts: 0 when it is full enough, when waiting is off (`maxMs` 0), when arrivals are
 * too sparse for company to come within `maxMs`, or when the last change came after a pause (an
 * idle relay's next message goes at once); else the time the smoothed gap says the rest takes to
 * arrive, ending at the latest `maxMs` after the oldest arrived.
 */
export function lingerMs(
  queued: number,
  oldestAgeMs: number,
  gaps: ArrivalGaps,
  maxMs: number,
  target = LINGER_TARGET_CHANGES,
): number {
  if (maxMs <= 0 || queued >= target || gaps.gapMs === null || gaps.lastGapMs === null) return 0;
  if (gaps.gapMs > maxMs || gaps.lastGapMs > maxMs) return 0;
  return Math.max(0, Math.min(maxMs - oldestAgeMs, gaps.gapMs * (target - queued)));
}
