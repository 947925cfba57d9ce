/**
 * Records one attempt of a job in one commit: every recipient's outcome decided by policy, the
 * bounces and webhooks it causes, the warm-up count, and the body dropped once no recipient needs
 * it. The versionstamp check in the commit makes a replayed attempt a no-op. A commit the store
 * refuses is held and retried, never dropped: the remote side may have accepted the mail.
 */
import { CommitFailedError, type Committer } from "../../core/store/committer.ts";
import { listRows } from "../../core/store/queue.ts";
import { attemptChange, type RecipientResult } from "../../core/store/deliveries.ts";
import { deleteBody, deleteBodyOp } from "../../core/store/bodies.ts";
import type { BodyCache } from "../../core/store/body_cache.ts";
import { countWarmupOp } from "../../core/store/sites.ts";
import { FINAL_STATUSES, type RecipientRow } from "../../core/model.ts";
import type { Logger } from "../../core/log.ts";
import { metrics } from "../../core/metrics.ts";
import { utcDay } from "../../core/policy/source_pick.ts";
import type { TlsDetails } from "../../delivery/outbound_session.ts";
import {
  decide,
  type Outcome,
  type RetryPolicy,
  retryPolicyFor,
} from "../../core/policy/outcome.ts";
import { BODY_DROP_IN_COMMIT_MAX_CHUNKS } from "../../core/policy/actor_tuning.ts";
import { type BounceDeps, bounceEffects } from "../bounces.ts";
import type { Job } from "./job.ts";
import type { SiteState } from "./state.ts";

export interface AttemptRecordDeps {
  kv: Deno.Kv;
  committer: Committer;
  bodyCache: BodyCache;
  log: Logger;
  retry: RetryPolicy;
  bounces: BounceDeps;
  now(): number;
}

export type AttemptOutcome = Outcome;

export interface AttemptContext {
  remoteHost?: string;
  remoteName?: string;
  localAddress?: string;
  tls?: string;
  tlsDetails?: TlsDetails;
}

export interface RecordOptions {
  notBefore?: number;
  /** The failure came before any transaction: defer, never bounce. */
  neverBounce?: boolean;
  /** The attempt went out from this source (""=any): shaping learns from its replies. */
  feedback?: string;
  warmupSource?: string;
  dsn?: boolean;
}

/**
 * Records the attempt and returns every recipient's result. The site learns from it: shaping
 * from the replies, its domain's next due time from the results, and an outcome the store
 * refused is held on the site (state.ts) with the entry still claimed.
 */
export async function recordAttempt(
  deps: AttemptRecordDeps,
  site: SiteState,
  job: Job,
  outcomeOf: (row: RecipientRow) => AttemptOutcome,
  ctx: AttemptContext,
  options: RecordOptions = {},
): Promise<RecipientResult[]> {
  const { committer, kv, bodyCache, now, retry, log } = deps;
  const at = now();
  const results: RecipientResult[] = job.rows.map((row) =>
    decide(row, outcomeOf(row), retryPolicyFor(retry, job.due.domain), at, {
      notBefore: options.notBefore,
      neverBounce: options.neverBounce,
    })
  );
  if (options.feedback !== undefined) site.shaping.learn(results, options.feedback || undefined);
  const effects = await bounceEffects(deps.bounces, job.msg, results, {
    remoteMta: ctx.remoteName,
    ...(job.due.body ? { body: job.due.body } : {}),
    ...(options.dsn === false ? { dsn: false } : {}),
  });
  const allFinalHere = results.every((r) => FINAL_STATUSES.has(r.status));
  // A message whose every recipient is now final no longer needs its body. (A spooled body's
  // file goes after the commit, with the rows checked, as a large body's chunks do.)
  const dropBodyNow = allFinalHere && job.rows.length === job.msg.recipients &&
    !job.msg.spooled && job.msg.chunks <= BODY_DROP_IN_COMMIT_MAX_CHUNKS;
  const day = utcDay(at);
  const change = attemptChange(
    job.due,
    results,
    {
      message: job.msg,
      ...(ctx.remoteHost ? { remoteHost: ctx.remoteHost } : {}),
      ...(ctx.localAddress ? { localAddress: ctx.localAddress } : {}),
      ...(ctx.tls ? { tls: ctx.tls } : {}),
      ...(ctx.tlsDetails ? { tlsDetails: ctx.tlsDetails } : {}),
    },
    at,
    (op) => {
      if (dropBodyNow) deleteBodyOp(op, job.msg);
      if (options.warmupSource) countWarmupOp(op, options.warmupSource, site.site, day);
      effects.apply(op);
    },
  );
  const committed = async (stamp: string | null) => {
    if (!stamp) {
      log.warn("delivery.record_conflict", { msg: job.msg.id, site: site.site });
      return;
    }
    for (const r of results) metrics.deliveries.inc({ outcome: r.event });
    effects.after(stamp);
    site.noteNextAttempts(job.due.domain, results);
    if (dropBodyNow) {
      bodyCache.delete(job.msg.id);
    } else if (allFinalHere) {
      const rows = await listRows(kv, job.msg.id);
      if (rows.every((r) => FINAL_STATUSES.has(r.status))) {
        bodyCache.delete(job.msg.id);
        await deleteBody(kv, job.msg);
      }
    }
  };
  let stamp: string | null;
  try {
    stamp = await committer.commit(change);
  } catch (err) {
    // A change too large fails the same way forever: holding it would stop the site for good.
    if (!(err instanceof CommitFailedError) || err.tooLarge) throw err;
    // The store refused the outcome (a full disk): keep it, and the entry, until it takes it.
    // Let go, the entry would stay due in KV and a recipient already accepted would be sent again.
    site.holdUncommitted(job, async () => {
      const stamp = await committer.commit(change);
      await committed(stamp).catch((err) =>
        log.warn("delivery.after_commit_failed", { msg: job.msg.id, err })
      );
    }, err);
    return results;
  }
  await committed(stamp);
  return results;
}
