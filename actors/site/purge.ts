/**
 * Purging a site: every queued recipient of its domains is recorded bounced (with a DSN unless
 * asked not to). Entries in flight finish their attempt instead.
 */
import { listDue } from "../../core/store/queue.ts";
import { PURGE_BATCH } from "../../core/policy/actor_tuning.ts";
import { type AttemptRecordDeps, recordAttempt } from "./attempt.ts";
import { keyId, loadJob } from "./job.ts";
import type { SiteState } from "./state.ts";

/** Removes every queued recipient of the site; the count removed. */
export async function purgeSite(
  deps: AttemptRecordDeps,
  site: SiteState,
  options: { dsn: boolean },
): Promise<number> {
  const { kv } = deps;
  // While purging, the site takes no work.
  site.purging = true;
  let removed = 0;
  try {
    site.dropReady();
    for (const domain of [...site.domains.keys()]) {
      for (;;) {
        const entries = await listDue(kv, domain, Number.MAX_SAFE_INTEGER, PURGE_BATCH);
        let progressed = false;
        for (const due of entries) {
          const id = keyId(due.key);
          if (site.inFlight(id)) continue;
          site.hold(id);
          try {
            const job = await loadJob(kv, due);
            if (!job) continue;
            await recordAttempt(
              deps,
              site,
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
            site.release(id);
          }
        }
        if (entries.length < PURGE_BATCH || !progressed) break;
      }
      const q = site.domains.get(domain);
      if (q) q.nextDueAt = null;
    }
  } finally {
    site.purging = false;
    site.wake();
  }
  deps.log.info("site.purged", { site: site.site, recipients: removed, dsn: options.dsn });
  return removed;
}
