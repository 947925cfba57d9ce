/**
 * What the store keeps per destination site besides its due entries: an operator's suspension,
 * and the warm-up counters of sources sending to it.
 *
 * @module
 */
import { keys } from "./keys.ts";

export interface SiteControl {
  suspended: boolean;
  since: number;
}

export async function getSiteControl(kv: Deno.Kv, site: string): Promise<SiteControl | null> {
  return (await kv.get<SiteControl>(keys.siteControl(site))).value;
}

/** Suspends or resumes a site; a resumed site has no control record at all. */
export async function setSiteSuspended(kv: Deno.Kv, site: string, suspended: boolean, now: number) {
  if (suspended) await kv.set(keys.siteControl(site), { suspended: true, since: now });
  else await kv.delete(keys.siteControl(site));
}

/** Sends from `source` to `site` on UTC day `day`, as summed by attempt commits. */
export async function readWarmupCount(
  kv: Deno.Kv,
  source: string,
  site: string,
  day: number,
): Promise<number> {
  const v = (await kv.get<Deno.KvU64>(keys.warmupCount(source, site, day))).value;
  return v ? Number(v.value) : 0;
}

export function countWarmupOp(op: Deno.AtomicOperation, source: string, site: string, day: number) {
  op.sum(keys.warmupCount(source, site, day), 1n);
}

export interface DueStats {
  /** Due entries (one per message and retry time). */
  entries: number;
  /** Recipients those entries carry. */
  recipients: number;
  /** The oldest message id among them (ids are time-ordered), or null. */
  oldestMsgId: string | null;
  /** The earliest due time, or null. */
  nextDueAt: number | null;
  /** The scan stopped at `limit` entries: the numbers are lower bounds. */
  truncated: boolean;
}

/** Counts a domain's due entries for the queue API (never on the delivery path). */
export async function dueStats(kv: Deno.Kv, domain: string, limit: number): Promise<DueStats> {
  const stats: DueStats = {
    entries: 0,
    recipients: 0,
    oldestMsgId: null,
    nextDueAt: null,
    truncated: false,
  };
  for await (
    const e of kv.list<{ rcpts: number[] }>({ prefix: keys.duePrefix(domain) }, { limit })
  ) {
    const [, , dueAt, msgId] = e.key as [string, string, number, string];
    stats.entries++;
    stats.recipients += e.value.rcpts.length;
    if (stats.nextDueAt === null || dueAt < stats.nextDueAt) stats.nextDueAt = dueAt;
    if (stats.oldestMsgId === null || msgId < stats.oldestMsgId) stats.oldestMsgId = msgId;
  }
  stats.truncated = stats.entries >= limit;
  return stats;
}
