/**
 * Event counters for `GET /v1/stats`: KV sums written in the same commit as the events they count,
 * one counter per (account, hour, dimension, value, event type). Sums to one key within a commit
 * add up, so a tally folds a whole commit's events into one mutation per distinct counter, and the
 * group committer folds a whole batch's (core/store/committer.ts). Counts are per recipient: a
 * message to three recipients is `accepted` three times. A delivery costs one counter (two with
 * tags): its latency bucket under its domain, from which `delivered` and the hour's total are read.
 */
import { keyId, keys } from "./keys.ts";
import type { EventType } from "../model.ts";

const HOUR_MS = 3_600_000;
/** Above this many counters a commit's tally folds the per-domain ones away (KV mutation cap). */
const MAX_COUNTERS = 300;

export type StatDimension = "all" | "domain" | "tag";

/**
 * Delivery latency (accepted → delivered) is counted into these buckets (upper bounds, ms), so
 * percentiles come from sums alone: no per-message scan, and the same one-mutation-per-counter
 * folding within a commit. Every delivery is counted in exactly one bucket, so the buckets are the
 * `delivered` count too: a delivery sums only its bucket (older stores also hold a `delivered`
 * counter, which reading reconciles).
 */
export const LATENCY_BUCKETS_MS = [
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  30_000,
  60_000,
  300_000,
  900_000,
  3_600_000,
  14_400_000,
  86_400_000,
  Infinity,
];
const LATENCY_TYPE = "latency_le_";
/** Content scan time (POSTERN_RSPAMD_URL) is bucketed alike, under its own prefix. */
const SCAN_LATENCY_TYPE = "scan_le_";

function latencyBucket(ms: number, prefix = LATENCY_TYPE): string {
  const bound = LATENCY_BUCKETS_MS.find((b) => ms <= b)!;
  return prefix + (bound === Infinity ? "inf" : String(bound));
}

/**
 * Content scan counters, per message: every scan is `scanned`, and the ones that refused, held or
 * failed are also counted so (an rspamd failure is `scan_failed` whatever on_error did).
 */
export type ScanStat = "scanned" | "rejected" | "held" | "scan_failed";

/** Counts one content scan of `ms` for `account` in its own small commit (not a message's). */
export async function countScan(
  kv: Deno.Kv,
  account: string,
  at: number,
  outcome: Exclude<ScanStat, "scanned"> | null,
  ms: number,
): Promise<void> {
  const hour = hourOf(at);
  const op = kv.atomic();
  const types = ["scanned", latencyBucket(Math.max(0, ms), SCAN_LATENCY_TYPE)];
  if (outcome) types.push(outcome);
  for (const t of types) op.sum(keys.stat(account, hour, "all", "", t), 1n);
  await op.commit();
}

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** Counts gathered for one commit. */
export class StatTally {
  #counts = new Map<string, { key: Deno.KvKey; n: bigint }>();

  /**
   * Counts `count` events of `type` at `at`: under "all", under the recipient domain (delivery
   * outcomes only; `accepted` is a message-level fact), and under each tag.
   */
  add(
    account: string,
    type: EventType,
    at: number,
    options: {
      domain?: string;
      tags?: readonly string[];
      count?: number;
      /** For `delivered`: time from acceptance to delivery. */
      latencyMs?: number;
    } = {},
  ) {
    const hour = hourOf(at);
    const n = BigInt(options.count ?? 1);
    // A delivery's count is its latency bucket (see LATENCY_BUCKETS_MS), summed under its
    // domain only: the hour's total is read as the sum of its domains (readStats).
    const delivery = options.latencyMs !== undefined;
    const types = delivery ? [latencyBucket(Math.max(0, options.latencyMs!))] : [type];
    const perDomain = options.domain !== undefined && options.domain !== "" && type !== "accepted";
    for (const t of types) {
      if (!(delivery && perDomain)) this.#bump(keys.stat(account, hour, "all", "", t), n);
      if (perDomain) this.#bump(keys.stat(account, hour, "domain", options.domain!, t), n);
      for (const tag of options.tags ?? []) this.#bump(keys.stat(account, hour, "tag", tag, t), n);
    }
  }

  #bump(key: Deno.KvKey, n: bigint) {
    const id = keyId(key);
    const cur = this.#counts.get(id);
    if (cur) cur.n += n;
    else if (this.#counts.size < MAX_COUNTERS) this.#counts.set(id, { key, n });
  }

  get size(): number {
    return this.#counts.size;
  }

  apply(op: Deno.AtomicOperation) {
    for (const { key, n } of this.#counts.values()) op.sum(key, n);
  }
}

export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface StatRow {
  /** The hour (ISO), domain or tag the row is about. */
  key: string;
  counts: Partial<Record<EventType | ScanStat, number>>;
  /** Delivery latency percentiles in ms (bucket upper bounds); null without deliveries. */
  latency: Percentiles;
  /** Content scan time percentiles in ms (bucket upper bounds); null without scans. */
  scanLatency: Percentiles;
}

/** The smallest bucket bound under which `q` of the counted deliveries fall. */
function percentile(buckets: Map<number, number>, q: number): number | null {
  const total = [...buckets.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (const bound of LATENCY_BUCKETS_MS) {
    seen += buckets.get(bound) ?? 0;
    if (seen >= q * total) return Number.isFinite(bound) ? bound : null;
  }
  return null;
}

/**
 * `counts` with `delivered` as its latency buckets add up. A store written before deliveries
 * stopped summing `delivered` itself has both for its older hours, where they agree; the buckets
 * never count fewer, so the larger is right in every row.
 */
function withDeliveredFromBuckets(
  counts: Partial<Record<EventType | ScanStat, number>>,
  buckets: Map<number, number> | undefined,
): Partial<Record<EventType | ScanStat, number>> {
  const inBuckets = [...(buckets?.values() ?? [])].reduce((a, b) => a + b, 0);
  const delivered = Math.max(counts.delivered ?? 0, inBuckets);
  return delivered > 0 ? { ...counts, delivered } : counts;
}

/** Sums the counters of `account` over `[since, until)` grouped by hour, domain or tag. */
export async function readStats(
  kv: Deno.Kv,
  account: string,
  by: "hour" | "domain" | "tag",
  since: number,
  until: number,
): Promise<StatRow[]> {
  const prefix = keys.statPrefix(account);
  const rows = new Map<string, Partial<Record<EventType | ScanStat, number>>>();
  const latencies = new Map<string, Map<number, number>>();
  const scanLatencies = new Map<string, Map<number, number>>();
  /** By hour: the delivery buckets summed over the hour's domains (see StatTally.add). */
  const domainLatencies = new Map<string, Map<number, number>>();
  const dim: StatDimension = by === "hour" ? "all" : by;
  const iter = kv.list<Deno.KvU64>({
    start: [...prefix, hourOf(since)],
    end: [...prefix, until],
  });
  for await (const e of iter) {
    const [, , hour, d, value, type] = e.key as [
      string,
      string,
      number,
      string,
      string,
      EventType | ScanStat,
    ];
    const rowKey = by === "hour" ? new Date(hour).toISOString() : value;
    const ofDomains = by === "hour" && d === "domain" && type.startsWith(LATENCY_TYPE);
    if (d !== dim && !ofDomains) continue;
    const bucketed = type.startsWith(LATENCY_TYPE)
      ? [LATENCY_TYPE, ofDomains ? domainLatencies : latencies] as const
      : type.startsWith(SCAN_LATENCY_TYPE)
      ? [SCAN_LATENCY_TYPE, scanLatencies] as const
      : null;
    if (bucketed) {
      const [prefix, into] = bucketed;
      const text = type.slice(prefix.length);
      const bound = text === "inf" ? Infinity : Number(text);
      const buckets = into.get(rowKey) ?? new Map<number, number>();
      buckets.set(bound, (buckets.get(bound) ?? 0) + Number(e.value.value));
      into.set(rowKey, buckets);
      if (!rows.has(rowKey)) rows.set(rowKey, {});
      continue;
    }
    const counts = rows.get(rowKey) ?? {};
    counts[type] = (counts[type] ?? 0) + Number(e.value.value);
    rows.set(rowKey, counts);
  }
  // An hour's delivery buckets: its domains' sums, or the hour's own where an older store summed
  // them too (never fewer than the domains', which a commit's counter cap could have dropped).
  for (const [rowKey, buckets] of domainLatencies) {
    const own = latencies.get(rowKey) ?? new Map<number, number>();
    for (const [bound, n] of buckets) own.set(bound, Math.max(own.get(bound) ?? 0, n));
    latencies.set(rowKey, own);
  }
  const percentiles = (buckets = new Map<number, number>()): Percentiles => ({
    p50: percentile(buckets, 0.5),
    p90: percentile(buckets, 0.9),
    p99: percentile(buckets, 0.99),
  });
  return [...rows.entries()].map(([key, counts]) => ({
    key,
    counts: withDeliveredFromBuckets(counts, latencies.get(key)),
    latency: percentiles(latencies.get(key)),
    scanLatency: percentiles(scanLatencies.get(key)),
  }))
    .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

let depthCache: { at: number; value: number } | null = null;

/**
 * Due entries in the whole queue (one per message and destination), counted up to `cap` and
 * cached for a few seconds: a metrics scrape must stay cheap when the queue is deep.
 */
export async function queueDepth(kv: Deno.Kv, now: number, cap = 100_000): Promise<number> {
  if (depthCache && now - depthCache.at < 10_000) return depthCache.value;
  let n = 0;
  for await (const _ of kv.list({ prefix: keys.dueAllPrefix() }, { limit: cap, batchSize: 1000 })) {
    n++;
  }
  depthCache = { at: now, value: n };
  return n;
}
