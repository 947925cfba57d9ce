/**
 * One outbound connection of a site, for its whole life: open it, carry one transaction per
 * ready job while there is work (up to the profile's deliveries per connection, from the source
 * the job's pool picks), idle a while for more, close. Every attempt is recorded (attempt.ts),
 * sent or not. It takes the site's state and stops as soon as the site may not send: stopping,
 * suspended, purging, an outcome waiting for the store, a window that shrank, a lease not fresh.
 */
import { readBody, withPrefix } from "../../core/store/bodies.ts";
import { metrics } from "../../core/metrics.ts";
import { nextUtcDayStart } from "../../core/policy/source_pick.ts";
import { returnPathFor, type VerpConfig } from "../../core/mail/verp.ts";
import type { OutboundSession, RecipientOutcome } from "../../delivery/outbound_session.ts";
import type { ConnectionCap } from "../connection_cap.ts";
import type { SiteDirectory } from "../site_directory.ts";
import { type AttemptRecordDeps, recordAttempt } from "./attempt.ts";
import { type ConnectDeps, openSession, tlsPolicyKey, type Unsent } from "./connect.ts";
import type { Job } from "./job.ts";
import type { Source } from "./source_chooser.ts";
import type { SiteState } from "./state.ts";

export interface ConnectionDeps extends AttemptRecordDeps, ConnectDeps {
  /** Outbound connections open at once over every site of this node. */
  connections: ConnectionCap;
  directory: SiteDirectory;
  /** VERP: each recipient's delivery gets its own return path at this bounce domain. */
  verp?: VerpConfig | undefined;
}

/** Runs one connection of the site until it has no work, may not send, or breaks. */
export async function runConnection(deps: ConnectionDeps, site: SiteState): Promise<void> {
  const { shaping, lease } = site;
  let session: OutboundSession | null = null;
  let source: Source | null = null;
  try {
    while (!site.halted) {
      // The window shrank under a backoff: this connection is one too many.
      if (shaping.window.current > shaping.window.limit) break;
      // An outcome waits for the store: send nothing more until it is committed.
      if (site.uncommitted.size > 0) break;
      // No attempt starts on a lease that may have gone to another node.
      if (!(await lease.hold().catch(() => false)) || !lease.fresh()) {
        if (lease.held) lease.lose(null);
        break;
      }
      const job = site.ready.shift();
      if (!job) {
        // Idle: no need to keep a slot of the node-wide cap another site is waiting for.
        if (!session || deps.connections.contended) break;
        site.idle++;
        site.wake(); // the loop now sleeps until the next due entry, not a whole poll
        const got = await site.waitForJob(shaping.profile.idleTimeoutMs);
        site.idle--;
        if (!got) break;
        continue;
      }
      if (site.ready.length < shaping.window.limit) site.wake(); // refill early
      try {
        await shaping.pace(() => site.stopping);
        const maxDeliveries = shaping.profile.maxDeliveriesPerConnection;
        // A connection that will carry this job keeps its source; a new one picks afresh.
        const reusable = session !== null && session.usable && session.deliveries < maxDeliveries;
        const want = await site.sources.choose(job.msg, job.rows, reusable ? source : null);
        if (want === null) {
          await warmupExhausted(deps, site, job);
          continue;
        }
        const policyKey = session ? await tlsPolicyKeyOf(deps, job.due.domain) : null;
        if (
          session &&
          (!session.usable || session.deliveries >= maxDeliveries ||
            source?.address !== want.address || session.policyKey !== policyKey)
        ) {
          await session.close();
          session = null;
        }
        if (session && session.deliveries > 0 && !(await session.reset())) {
          await session.close();
          session = null;
        }
        if (!session) {
          const info = await deps.directory.lookup(job.due.domain);
          shaping.setProfile(info.profile);
          const opened = await openSession(deps, site, job, want, info);
          if ("unsent" in opened) {
            await recordUnsent(deps, site, job, opened.unsent);
            site.sources.release(want);
            continue;
          }
          session = opened.session;
          source = want;
        }
        await deliver(deps, site, session, job, want);
      } finally {
        site.finish(job);
      }
    }
  } finally {
    // The connection counts against the site's window and the node's cap until it is closed.
    await session?.close();
  }
}

/** A job's transactions: one per distinct envelope sender, recipients in row order. */
function envelopes(job: Job, verp: VerpConfig | undefined): { from: string; rcpts: string[] }[] {
  const byFrom = new Map<string, string[]>();
  for (const row of job.rows) {
    const from = returnPathFor(job.msg, row.idx, verp);
    byFrom.set(from, [...byFrom.get(from) ?? [], row.rcpt]);
  }
  return [...byFrom].map(([from, rcpts]) => ({ from, rcpts }));
}

/** Every source is at its warm-up cap here today: try again when the UTC day turns. */
function warmupExhausted(deps: ConnectionDeps, site: SiteState, job: Job) {
  const nextDay = nextUtcDayStart(deps.now());
  return recordAttempt(
    deps,
    site,
    job,
    () => ({
      kind: "transient",
      reply:
        "451 4.4.5 Every source address of the pool is at its warm-up limit for this site today",
      code: 451,
    }),
    {},
    { notBefore: nextDay },
  );
}

/** A session checked against one domain's TLS policy carries no mail held to another. */
async function tlsPolicyKeyOf(deps: ConnectionDeps, domain: string): Promise<string> {
  // Fresh or not: a stale entry must not make the connection wait for a new lookup.
  const info = deps.directory.peek(domain);
  if (!info) return "unknown";
  const tls = deps.tls;
  // The domain's MTA-STS policy (cached in memory; a TXT lookup the first time).
  if (tls && info.destination.ok && !info.destination.route && info.tlsLevel !== "none") {
    await tls.stsPolicy(domain);
  }
  return tlsPolicyKey(info, tls);
}

/** An attempt that ended before any transaction (no route, hosts down): logged like the rest. */
function recordUnsent(deps: ConnectionDeps, site: SiteState, job: Job, unsent: Unsent) {
  const { outcome, ms, ...record } = unsent;
  deps.log.info("delivery.attempt", {
    msg: job.msg.id,
    rcpts: job.rows.length,
    site: site.site,
    result: outcome.kind,
    reply: outcome.reply.slice(0, 300),
    ms: ms ?? 0,
  });
  return recordAttempt(deps, site, job, () => outcome, {}, record);
}

async function deliver(
  deps: ConnectionDeps,
  site: SiteState,
  session: OutboundSession,
  job: Job,
  source: Source,
) {
  const { kv, bodyCache, log } = deps;
  const started = performance.now();
  const outcomes: RecipientOutcome[] = [];
  // With VERP every recipient has its own return path, so its own transaction (as KumoMTA and
  // Postal send): a report that comes back names one delivery, never its neighbours.
  for (const [i, group] of envelopes(job, deps.verp).entries()) {
    if (i > 0 && !(await session.reset())) {
      const reply = "Connection lost between transactions; not attempted";
      outcomes.push(...group.rcpts.map((rcpt) => ({ rcpt, kind: "transient" as const, reply })));
      continue;
    }
    const cached = bodyCache.get(job.msg.id) ?? job.due.body;
    const body = withPrefix(job.msg.prefix, cached ?? readBody(kv, job.msg));
    outcomes.push(
      ...await session.send(
        group.from,
        group.rcpts,
        body,
        job.msg.size + (job.msg.prefix?.length ?? 0),
      ),
    );
  }
  metrics.attemptSeconds.observe((performance.now() - started) / 1000);
  const byRcpt = new Map(outcomes.map((o) => [o.rcpt, o]));
  for (const row of job.rows) {
    const o = byRcpt.get(row.rcpt)!;
    log.info("delivery.attempt", {
      msg: job.msg.id,
      rcpt: row.rcpt,
      site: site.site,
      result: o.kind,
      reply: o.reply.slice(0, 300),
      host: session.info.remoteHost,
      source: session.info.localAddress ?? null,
      tls: session.info.tls ?? null,
      ms: Math.round(performance.now() - started),
    });
  }
  await recordAttempt(deps, site, job, (row) => byRcpt.get(row.rcpt)!, session.info, {
    ...(source.warming ? { warmupSource: source.address! } : {}),
    feedback: source.address ?? "",
  });
}
