/**
 * The numbers the delivery and webhook actors run by, in one place: the actors are mechanism and
 * hard-code none of them. Operator settings (shaping profiles, retry schedules, poll interval)
 * come from core/config; these are the internal bounds behind them, each with why it is what it is.
 */

/** How long a site lease lasts unrenewed: a dead node's sites move to another after this. */
export const SITE_LEASE_TTL_MS = 30_000;
/** A lease is renewed once this share of its TTL has passed since the last renewal. */
export const LEASE_RENEW_FRACTION = 1 / 3;
/**
 * No attempt starts on a lease older than this share of its TTL: the margin covers the attempt's
 * own start, so none begins on a lease about to run out while the loop that renews it is held up.
 */
export const LEASE_FRESH_FRACTION = 2 / 3;
/** A node that did not get a lease asks again no sooner than this, however often it is woken. */
export const LEASE_RETRY_MIN_MS = 250;
/** Due entries read from one domain's queue at a time. */
export const DUE_LIST_BATCH = 500;
/**
 * Listed due entries loaded at once when a site reads its queue (two store reads each): enough
 * that a burst is ready in about one read's time, few enough that a long listing does not flood
 * the store's reader.
 */
export const CLAIM_LOADS_AT_ONCE = 16;
/** Jobs a site keeps ready in memory; past it, offers are dropped (the due entry is in KV). */
export const MAX_READY_JOBS = 5_000;
/** Due entries an operator's purge reads at a time. */
export const PURGE_BATCH = 200;
/** Due entries the queue view counts per domain before it reports the depth as truncated. */
export const QUEUE_VIEW_LIMIT = 10_000;
/**
 * A message this many chunks or smaller has its body deleted in the attempt's own commit once
 * every recipient is final (larger ones are deleted after it, so the commit stays small).
 */
export const BODY_DROP_IN_COMMIT_MAX_CHUNKS = 40;
/** An outcome the store refused is tried again after this, doubling up to the maximum. */
export const HELD_OUTCOME_RETRY = { firstMs: 200, maxMs: 5_000 } as const;
/** How long after the loop's wake-up an entry due now but held elsewhere is looked at again. */
export const MIN_DUE_WAIT_MS = 10;

/** How long a webhook endpoint's lease lasts unrenewed. */
export const WEBHOOK_LEASE_TTL_MS = 30_000;
/** Events a webhook actor reads from its account's log at a time (it POSTs them one by one). */
export const WEBHOOK_PAGE = 20;
/** How long a webhook URL's address check is trusted before the name is looked up again. */
export const WEBHOOK_TARGET_TTL_MS = 60_000;
/** Event metadata kept in memory per webhook actor (oldest out first). */
export const WEBHOOK_MESSAGE_CACHE = 500;

/** How many worker polls pass between sweeps for DSNs a crash left owed. */
export const DSN_SWEEP_EVERY = 12;
