/**
 * Purging a site: every queued recipient of its domains is recorded bounced (with a DSN unless
 * asked not to). Entries in flight finish their attempt instead.
 */
import { listDue } from "../core/store/queue.ts";
import type { RecipientResult } from "../core/store/deliveries.ts";
import type { RecipientRow } from "../core/model.ts";
import type { Logger } from "../core/log.ts";
import type { AttemptContext, AttemptOutcome, RecordOptions } from "./attempt_record.ts";
import { type Job, keyId, loadJob } from "./site_job.ts";

/** What purging needs of its site actor. */
export interface SitePurger {
  site: string;
  deps: { kv: Deno.Kv; inflight: Set<string>; log: Logger };
  /** The site's domains, with the earliest due time known for each. */
  domains: Map<string, { nextDueAt: number | null }>;
  /** While purging, the actor takes no work. */
  setPurging(purging: boolean): void;
  /** Lets go of every ready job. */
  dropReady(): void;
  hold(id: string): void;
  release(id: string): void;
  recordAll(
    job: Job,
    outcomeOf: (row: RecipientRow) => AttemptOutcome,
    ctx: AttemptContext,
    options?: RecordOptions,
  ): Promise<RecipientResult[]>;
  wake(): void;
}

/** Removes every queued recipient of the site; the count removed. */
export async function purgeSite(p: SitePurger, options: { dsn: boolean }): Promise<number> {
  const { kv, inflight } = p.deps;
  p.setPurging(true);
  let removed = 0;
  try {
    p.dropReady();
    for (const domain of [...p.domains.keys()]) {
      for (;;) {
        const entries = await listDue(kv, domain, Number.MAX_SAFE_INTEGER, 200);
        let progressed = false;
        for (const due of entries) {
          const id = keyId(due.key);
          if (inflight.has(id)) continue;
          p.hold(id);
          try {
            const job = await loadJob(kv, due);
            if (!job) continue;
            await p.recordAll(
              job,
              () => ({
                kind: "permanent",
                reply: "550 5.0.0 Removed from the queue by an operator",
                code: 550,
              }),
              {},
              { dsn: options.dsn },
            );
            removed += job.rows.length;
            progressed = true;
          } finally {
            p.release(id);
          }
        }
        if (entries.length < 200 || !progressed) break;
      }
      const q = p.domains.get(domain);
      if (q) q.nextDueAt = null;
    }
  } finally {
    p.setPurging(false);
    p.wake();
  }
  p.deps.log.info("site.purged", { site: p.site, recipients: removed, dsn: options.dsn });
  return removed;
}
