/**
 * Intake flow control, after Postfix's `in_flow_delay`: when mail arrives faster than this node
 * delivers it, a new transaction waits a moment before its MAIL FROM is answered, instead of the
 * queue of mail waiting for its first attempt growing for as long as the clients keep up the pace.
 * Every message accepted then waits behind a short queue (its accept → delivered time stays
 * bounded), and the node's own CPU goes to delivering rather than taking more in.
 *
 * What counts is this node's backlog: messages (and their bytes) it accepted whose first delivery
 * attempt has not ended. Bytes matter as much as messages: a 1 MB body takes as long to send as
 * hundreds of 2 KB ones. A retry waiting for its due time is not backlog (a down destination must
 * not hold intake back), and the pause is bounded: past POSTERN_IN_FLOW_DELAY the transaction goes
 * on regardless, as Postfix's does. Nothing is ever refused for it.
 *
 * @module
 */

/** A node's mail accepted and not yet through its first delivery attempt. */
export interface Backlog {
  messages: number;
  bytes: number;
}

export interface InFlowLimits {
  /** Messages waiting past which new transactions pause. */
  messages: number;
  /** Bytes waiting past which new transactions pause. */
  bytes: number;
}

/**
 * Past these (counting the transactions under way) a new transaction waits for a first attempt
 * to end. The byte limit was chosen by the 1 MB bench (200 messages, 20 sessions, 2 cores): at
 * 8 MiB few enough transactions ran at once that intake's fsyncs were barely shared (twice the
 * flushes of no flow control, ~10 % fewer msg/s), at 16 MiB a message accepted behind the others
 * waited up to 160 ms; 12 MiB kept the msg/s of no flow control and its p99 accept → delivered
 * near 90 ms (no flow control: 380–520 ms). The message count stops a flood of small messages
 * from queueing more than a second or two of deliveries.
 */
export const IN_FLOW_LIMITS: InFlowLimits = { messages: 1_000, bytes: 12 * 1024 * 1024 };

/**
 * A message still counted after this long is forgotten by the count: its attempt may be stuck
 * (a receiver slow to answer the final dot) or its entry went to another node. The pause is
 * bounded anyway; this keeps one lost hand-over from counting for ever.
 */
export const IN_FLOW_FORGET_AFTER_MS = 5 * 60_000;

/**
 * Whether one more transaction may start now: `starting` have been let go and not yet ended
 * (their messages are not counted yet, so each counts as `typicalBytes`, what messages have
 * weighed lately). With nothing ahead of it, one always may: a message larger than the byte
 * limit must not wait for a backlog that is already empty.
 */
export function roomForAnother(
  backlog: Backlog,
  starting: number,
  typicalBytes: number,
  limits: InFlowLimits = IN_FLOW_LIMITS,
): boolean {
  if (backlog.messages === 0 && starting === 0) return true;
  return backlog.messages + starting + 1 <= limits.messages &&
    backlog.bytes + (starting + 1) * typicalBytes <= limits.bytes;
}

/**
 * How many of a site's ready messages count toward the node's backlog. Flow control is for a node
 * that cannot keep up, not for a destination that sets its own pace: mail at a site held to a
 * message rate (its profile's, or a backoff after pushback) or paused keeps its place in the queue
 * without slowing intake for every other destination, as Postfix's in_flow_delay only sees mail
 * its queue manager has not taken in. Other sites count three rounds of their connection
 * window: what they are sending and the next rounds; a destination slow to answer holds no more
 * than that against intake.
 */
export function siteBacklogRoom(site: { windowLimit: number; paced: boolean }): number {
  return site.paced ? 0 : SITE_BACKLOG_ROUNDS * Math.max(1, site.windowLimit);
}

/** Rounds of a site's connection window that count as the node's backlog. */
export const SITE_BACKLOG_ROUNDS = 3;

/** How much the newest message moves the typical size (an exponential moving average). */
export const TYPICAL_SIZE_WEIGHT = 1 / 8;

/** The typical message size after one of `bytes` (the first sets it). */
export function nextTypicalSize(typical: number, bytes: number): number {
  return typical === 0 ? bytes : typical + (bytes - typical) * TYPICAL_SIZE_WEIGHT;
}
