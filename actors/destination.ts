/**
 * One actor per destination *site* (the MX host set, or a route), alive while it has work. Every
 * recipient domain the site receives for (all Google-hosted domains, say) is worked by this one
 * actor, so the site's limits hold across them. It owns the site's shaping state, applying
 * policy from core/policy: the concurrency window (grows on success, halves on throttling), the
 * message rate (GCRA), hosts skipped after failing, the source address per connection
 * (pools, warm-up, deprioritised sources) and an operator's suspension.
 *
 * It holds the site's lease, takes due entries from KV (filed per domain), runs connections that
 * each carry up to `max_deliveries_per_connection` transactions, and records every attempt in one
 * commit. Only the lease holder delivers: intake's in-memory hand-over is taken only while the
 * lease is held (another node's actor leaves the entry in KV, where the holder's poll finds it),
 * and an actor that loses its lease drops what it had ready and starts no new attempt; it reads
 * the store afresh when it holds the lease again. A due entry is in flight at most once: the worker's shared set guards this node, the
 * lease guards other nodes, and the versionstamp check in the outcome commit makes replays no-ops.
 * That check keeps the store right, not the wire: so an entry read from KV is claimed in the
 * shared set *before* it is loaded, and loading re-reads the entry itself. A listing can predate
 * an attempt that was recorded (and let go) while it came back; sent again, it would reach the
 * remote side twice (#claim).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Committer } from "../core/store/committer.ts";
import {
  type DueEntry,
  listDue,
  nextDueAfter,
  nextDueAt,
  retireDestination,
} from "../core/store/queue.ts";
import type { RecipientResult } from "../core/store/deliveries.ts";
import { releaseSiteLease, trySiteLease } from "../core/store/leases.ts";
import { readBody, withPrefix } from "../core/store/bodies.ts";
import type { BodyCache } from "../core/store/body_cache.ts";
import { getSiteControl } from "../core/store/sites.ts";
import type { RecipientRow } from "../core/model.ts";
import type { Logger } from "../core/log.ts";
import { metrics } from "../core/metrics.ts";
import type { SiteProfile } from "../core/config/shaping.ts";
import type { Pools } from "../core/config/pools.ts";
import { utcDay } from "../core/policy/source_pick.ts";
import type { SiteView } from "../core/queue_control.ts";
import type { SiteDirectory } from "./site_directory.ts";
import type { OutboundSession, RecipientOutcome } from "../delivery/outbound_session.ts";
import type { ReplyTimeouts } from "../delivery/reply_timeouts.ts";
import type { ConnectionCap } from "./connection_cap.ts";
import type { RetryPolicy } from "./outcome.ts";
import type { BounceDeps } from "./bounces.ts";
import type { CredentialSettingsCache } from "./credential_settings.ts";
import { type Source, SourceChooser } from "./source_chooser.ts";
import { type Job, keyId, loadJob } from "./site_job.ts";
import { SiteShaping } from "./site_shaping.ts";
import { HostCooldown } from "./host_cooldown.ts";
import {
  type AttemptContext,
  type AttemptOutcome,
  type AttemptRecorder,
  recordAttempt,
  type RecordOptions,
} from "./attempt_record.ts";
import { openSession, type SiteConnector, tlsPolicyKey } from "./site_connect.ts";
import { purgeSite } from "./site_purge.ts";
import { UncommittedOutcomes } from "./uncommitted_outcomes.ts";
import { viewSite } from "./site_view.ts";
import { returnPathFor, type VerpConfig } from "../core/mail/verp.ts";
import type { OutboundTls } from "./outbound_tls.ts";

export type { Job } from "./site_job.ts";

export interface SiteActorDeps {
  kv: Deno.Kv;
  committer: Committer;
  bodyCache: BodyCache;
  log: Logger;
  nodeId: string;
  hostname: string;
  retry: RetryPolicy;
  /** How long each SMTP step may wait for the server (the connect timeout is the profile's). */
  timeouts: ReplyTimeouts;
  /** Outbound connections open at once over every site of this node. */
  connections: ConnectionCap;
  pollIntervalMs: number;
  directory: SiteDirectory;
  pools: Pools;
  credentials: CredentialSettingsCache;
  bounces: BounceDeps;
  /** Due entries in flight on this node, across all actors (a domain may change sites). */
  inflight: Set<string>;
  /** How long a site lease lasts unrenewed: a dead node's sites move after this. @default 30000 */
  leaseTtlMs?: number;
  /** VERP: each recipient's delivery gets its own return path at this bounce domain. */
  verp?: VerpConfig;
  /** MTA-STS, DANE and TLS reports for outbound connections (actors/outbound_tls.ts). */
  tls?: OutboundTls;
  now(): number;
  random?: () => number;
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

/** One recipient domain's due queue, as this actor knows it. */
interface DomainQueue {
  /** The earliest due time known to be in KV; null: unknown, read it. */
  nextDueAt: number | null;
  /** The last read filled a whole batch: more may be due. */
  more: boolean;
  /** The worker saw intake touch this domain's queue marker at this time. */
  touchedAt: number;
}

export const DEFAULT_LEASE_TTL_MS = 30_000;
/** A node that did not get the lease asks again no sooner than this, however often it is woken. */
const LEASE_RETRY_MIN_MS = 250;
const LIST_BATCH = 500;
const MAX_READY = 5_000;

export class SiteActor {
  readonly site: string;
  #deps: SiteActorDeps;
  #domains = new Map<string, DomainQueue>();
  #ready: Job[] = [];
  /** Due entries this actor holds (ready or being delivered). */
  #mine = new Set<string>();
  #shaping: SiteShaping;
  #suspended = false;
  /** Retry now: read due entries regardless of their due time until the queue is drained. */
  #retryAll = false;
  /** Counts retry-now requests, so one made while a read runs is not cleared by that read. */
  #retryAsked = 0;
  #purging = false;
  #idle = 0;
  #jobWaiters = new Set<() => void>();
  #hostsDown = new HostCooldown();
  #sources: SourceChooser;
  #stopping = false;
  #wakeUp: (() => void) | null = null;
  /** A wake-up came while the loop was not asleep: its next sleep ends at once. */
  #wokenEarly = false;
  #done: Promise<void>;
  #leaseRenewedAt = 0;
  #leased = false;
  #leaseTtl: number;
  /** A lease attempt under way: the loop and the connections share it instead of racing. */
  #leasing: Promise<boolean> | null = null;
  /** Not before this is the lease asked for again (another node holds it). */
  #leaseRetryAt = 0;
  /** When another node's lease on the site runs out unless renewed. */
  #leaseFreeAt = 0;
  #scanAt = 0;
  #recorder: AttemptRecorder;
  #connector: SiteConnector;
  /** Outcomes the store refused: while any waits, the site takes no new work. */
  #uncommitted: UncommittedOutcomes;

  constructor(
    site: string,
    profile: SiteProfile,
    deps: SiteActorDeps,
    onExit: (actor: SiteActor) => void,
  ) {
    this.site = site;
    this.#deps = deps;
    this.#leaseTtl = deps.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.#sources = new SourceChooser(site, deps);
    this.#shaping = new SiteShaping(site, profile, {
      log: deps.log,
      sources: this.#sources,
      now: () => deps.now(),
    });
    this.#recorder = {
      site,
      deps,
      learn: (results, source) => this.#shaping.learn(results, source),
      noteNextAttempts: (domain, results) => this.#noteNextAttempts(domain, results),
      holdUncommitted: (job, commit, err) =>
        this.#uncommitted.hold(keyId(job.due.key), commit, err),
    };
    this.#uncommitted = new UncommittedOutcomes({
      site,
      log: deps.log,
      committed: (id) => this.#release(id),
      drained: () => this.wake(),
    });
    this.#connector = {
      site,
      deps,
      hostsDown: this.#hostsDown,
      shaping: this.#shaping,
      recordUnsent: (job, outcome, options) => this.#recordUnsent(job, outcome, options),
    };
    this.#done = this.#run().catch((err) => {
      deps.log.error("actor.crashed", { site, err });
    }).finally(() => {
      // Whatever this actor held is free for the next one (the worker starts it on its next scan).
      for (const id of this.#mine) deps.inflight.delete(id);
      this.#mine.clear();
      onExit(this);
    });
  }

  get domains(): string[] {
    return [...this.#domains.keys()];
  }

  /** Whether this node holds the site's lease. */
  get leased(): boolean {
    return this.#leased;
  }

  wake() {
    const w = this.#wakeUp;
    this.#wakeUp = null;
    if (w) w();
    else this.#wokenEarly = true;
  }

  /** Starts working a domain's due queue (the worker found the domain belongs to this site). */
  adopt(domain: string) {
    if (this.#domains.has(domain)) return;
    this.#domains.set(domain, { nextDueAt: null, more: false, touchedAt: 0 });
    this.#scanAt = 0;
    this.wake();
  }

  /** Stops working a domain that now belongs to another site; what is in flight finishes. */
  release(domain: string) {
    this.#domains.delete(domain);
    this.#ready = this.#ready.filter((job) => {
      if (job.due.domain !== domain) return true;
      this.#finish(job);
      return false;
    });
  }

  /** Intake (on any node) touched the domain's queue marker: read its due entries again. */
  touch(domain: string, touchedAt: number) {
    const q = this.#domains.get(domain);
    if (!q) return this.adopt(domain);
    if (q.touchedAt === touchedAt) return;
    q.touchedAt = touchedAt;
    q.nextDueAt = null;
    this.#scanAt = 0;
    this.wake();
  }

  /** Stops taking work; in-flight transactions finish (bounded by the caller's grace). */
  stop(): Promise<void> {
    this.#stopping = true;
    for (const job of this.#ready.splice(0)) this.#finish(job);
    this.#notifyJobs();
    this.wake();
    return this.#done;
  }

  /**
   * Fresh mail handed over in memory by intake: no KV reads on the hot path. Past the cap the
   * offer is dropped; the due entry is in KV and the next scan finds it.
   *
   * Only in the turn intake's commit resolved: then no attempt of the entry can have been
   * recorded yet, so it needs no re-read. A hand-over that had to wait (for a DNS lookup, say)
   * must `touch` instead, or it could bring back an entry a scan has sent meanwhile.
   */
  offer(job: Job) {
    this.adopt(job.due.domain);
    // Not the lease holder: the entry is the holder's (its poll finds it). Knock, so that a lease
    // nobody holds is taken and the store read.
    if (!this.#leaseFresh()) return this.#recheck(job.due.domain);
    const id = keyId(job.due.key);
    if (this.#stopping || this.#deps.inflight.has(id)) return;
    if (this.#ready.length >= MAX_READY) {
      this.#domains.get(job.due.domain)!.more = true;
      return;
    }
    this.#hold(id);
    this.#ready.push(job);
    this.#notifyJobs();
    this.wake();
  }

  #recheck(domain: string) {
    const q = this.#domains.get(domain);
    if (q) q.nextDueAt = null;
    this.#scanAt = 0;
    this.wake();
  }

  retryNow() {
    this.#retryAll = true;
    this.#retryAsked++;
    this.#hostsDown.clear();
    for (const q of this.#domains.values()) q.nextDueAt = null;
    this.#scanAt = 0;
    this.wake();
  }

  setSuspended(suspended: boolean) {
    this.#suspended = suspended;
    this.#scanAt = 0;
    this.#notifyJobs();
    this.wake();
  }

  #hold(id: string) {
    this.#deps.inflight.add(id);
    this.#mine.add(id);
  }

  #finish(job: Job) {
    const id = keyId(job.due.key);
    // Its outcome waits for the store: the entry stays claimed until that outcome is committed.
    if (!this.#uncommitted.has(id)) this.#release(id);
  }

  #release(id: string) {
    this.#deps.inflight.delete(id);
    this.#mine.delete(id);
  }

  /**
   * Takes a due entry a KV read listed: claims it on this node first, so that no offer and no
   * other actor takes it while it loads, then loads it, re-reading the entry. Null when it is
   * held here already or no longer there as listed.
   */
  async #claim(due: DueEntry): Promise<Job | null> {
    const id = keyId(due.key);
    if (this.#deps.inflight.has(id)) return null;
    this.#hold(id);
    let job: Job | null = null;
    try {
      job = await loadJob(this.#deps.kv, due);
    } finally {
      if (!job) this.#release(id);
    }
    return job;
  }

  #notifyJobs() {
    const waiters = [...this.#jobWaiters];
    this.#jobWaiters.clear();
    for (const w of waiters) w();
  }

  #sleep(ms: number): Promise<void> {
    // Woken during the turn (an offer, a touch, a retry-now that came after the turn looked):
    // look again now instead of after a whole poll interval.
    if (this.#wokenEarly) {
      this.#wokenEarly = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.#wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Waits until a job is offered (true) or `ms` pass (false). */
  #waitForJob(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (got: boolean) => {
        clearTimeout(timer);
        this.#jobWaiters.delete(notify);
        resolve(got);
      };
      const notify = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.#jobWaiters.add(notify);
    });
  }

  /**
   * The lease is held and was renewed recently enough to start an attempt on it. The margin (a
   * third of the TTL) covers the attempt's own start, so no attempt begins on a lease about to
   * run out while the loop that renews it is held up.
   */
  #leaseFresh(): boolean {
    return this.#leased && this.#deps.now() - this.#leaseRenewedAt < (this.#leaseTtl * 2) / 3;
  }

  /** Takes or renews the lease when due; concurrent callers share one attempt. */
  #holdLease(): Promise<boolean> {
    const { now } = this.#deps;
    if (this.#leased && now() - this.#leaseRenewedAt < this.#leaseTtl / 3) {
      return Promise.resolve(true);
    }
    if (!this.#leased && now() < this.#leaseRetryAt) return Promise.resolve(false);
    this.#leasing ??= this.#renewLease().finally(() => (this.#leasing = null));
    return this.#leasing;
  }

  async #renewLease(): Promise<boolean> {
    const { kv, nodeId, now } = this.#deps;
    const had = this.#leased;
    const at = now();
    let attempt;
    try {
      attempt = await trySiteLease(kv, this.site, nodeId, this.#leaseTtl, at);
    } catch (err) {
      // The store did not answer: the lease counts as held only while it surely is.
      if (had && !this.#leaseFresh()) this.#loseLease(null);
      throw err;
    }
    if (attempt.ok) {
      this.#leased = true;
      this.#leaseRenewedAt = at;
      if (!had) this.#gainLease();
      return true;
    }
    if (had) this.#loseLease(attempt.owner);
    // Ask again when the holder's lease would run out, unless woken (a knock) sooner.
    this.#leaseRetryAt = now() + LEASE_RETRY_MIN_MS;
    this.#leaseFreeAt = attempt.until;
    return false;
  }

  /** Taken (again): what another node did meanwhile is only in the store, so read it afresh. */
  #gainLease() {
    for (const q of this.#domains.values()) {
      q.nextDueAt = null;
      q.more = false;
    }
    this.#scanAt = 0;
  }

  /**
   * Lost (another node took it after this one failed to renew in time): stop at once. What was
   * ready is dropped, the holder sends it; attempts already on the wire finish, and their
   * outcome commits are checked against the due entries, so the store stays right.
   */
  #loseLease(holder: string | null) {
    this.#leased = false;
    this.#deps.log.warn("lease.lost", { site: this.site, holder: holder || null });
    for (const job of this.#ready.splice(0)) this.#finish(job);
    for (const q of this.#domains.values()) q.nextDueAt = null;
  }

  async #run() {
    const { kv, pollIntervalMs } = this.#deps;
    while (!this.#stopping) {
      try {
        if (await this.#step()) return;
      } catch (err) {
        // A store hiccup (a remote KV timing out, say) must not end the site: log, pause, go on.
        this.#deps.log.error("actor.step_failed", { site: this.site, err });
        await this.#sleep(pollIntervalMs);
      }
    }
    while (this.#shaping.window.current > 0) await sleep(20);
    await this.#uncommitted.settled(); // the worker's grace bounds this wait
    // Instead of leaving the lease to run out, hand the site over now: a restarted or
    // surviving node takes it at once.
    this.#leased = false;
    await releaseSiteLease(kv, this.site, this.#deps.nodeId).catch(() => {});
  }

  /** One turn of the actor's loop; true once the site has no work left and retired. */
  async #step(): Promise<boolean> {
    const { kv, now, pollIntervalMs } = this.#deps;
    this.#wokenEarly = false; // this turn looks at everything a wake-up so far asked for
    if (!(await this.#holdLease())) {
      // Another node works the site: wait for its lease to run out (it renews it while alive),
      // or for a knock (an offer, a touch) to ask again.
      // Asked at least every poll: a holder that let the site go wakes nobody here.
      const wait = Math.min(this.#leaseTtl / 3, pollIntervalMs, this.#leaseFreeAt - now() + 50);
      await this.#sleep(Math.max(wait, LEASE_RETRY_MIN_MS));
      return false;
    }
    const lowOnWork = this.#ready.length < this.#shaping.window.limit;
    const more = [...this.#domains.values()].some((q) => q.more);
    if (this.#scanAt <= now() || (more && lowOnWork)) {
      this.#scanAt = now() + pollIntervalMs;
      this.#suspended = (await getSiteControl(kv, this.site))?.suspended ?? false;
      if (!this.#suspended && !this.#purging && this.#uncommitted.size === 0) await this.#fill();
    }
    this.#shaping.noteRecovery();
    if (this.#suspended || this.#purging || this.#uncommitted.size > 0) {
      await this.#sleep(pollIntervalMs);
      return false;
    }
    if (this.#ready.length > 0) this.#spawnWorkers();
    if (this.#shaping.window.current > this.#idle || this.#ready.length > 0) {
      // Woken by an offer, a connection running low, idling or leaving, or the next poll.
      await this.#sleep(pollIntervalMs);
      return false;
    }
    // Nothing in flight (connections may idle, waiting for work): sleep until the next due entry.
    const next = await this.#nextDueAt();
    if (next === null && this.#mine.size === 0 && this.#shaping.window.current === 0) {
      if (await this.#retire()) return true;
      return false;
    }
    const wait = next === null ? pollIntervalMs : next - now();
    // At least a moment: an entry due now but held elsewhere (a domain that moved) must not spin.
    await this.#sleep(Math.min(Math.max(wait, 10), pollIntervalMs));
    this.#scanAt = 0;
    return false;
  }

  /** The earliest due time over this site's domains, from memory where known. */
  async #nextDueAt(): Promise<number | null> {
    let min: number | null = null;
    for (const [domain, q] of this.#domains) {
      if (q.nextDueAt === null) q.nextDueAt = await nextDueAt(this.#deps.kv, domain);
      if (q.nextDueAt !== null && (min === null || q.nextDueAt < min)) min = q.nextDueAt;
    }
    return min;
  }

  /**
   * Moves due entries not already in flight into the ready list. Instead of listing every
   * domain on every poll, a domain is read only when something may be due there: its known next
   * due time has come, it had more than one batch, or intake touched its marker.
   */
  async #fill() {
    const { kv, now } = this.#deps;
    const asked = this.#retryAsked;
    const until = this.#retryAll ? Number.MAX_SAFE_INTEGER : now();
    let anyMore = false;
    for (const [domain, q] of this.#domains) {
      if (!this.#retryAll && !q.more && q.nextDueAt !== null && q.nextDueAt > until) continue;
      const entries = await listDue(kv, domain, until, LIST_BATCH);
      q.more = entries.length === LIST_BATCH;
      anyMore ||= q.more;
      q.nextDueAt = q.more ? until : await nextDueAfter(kv, domain, until);
      for (const due of entries) {
        if (this.#ready.length >= MAX_READY) break;
        const job = await this.#claim(due);
        if (job) this.#ready.push(job);
      }
    }
    // A retry-now asked while this read ran is served by the next one.
    if (!anyMore && this.#retryAsked === asked) this.#retryAll = false;
    if (this.#ready.length > 0) this.#notifyJobs();
  }

  #spawnWorkers() {
    const { connections } = this.#deps;
    while (this.#ready.length > this.#idle && this.#uncommitted.size === 0) {
      if (!this.#shaping.acquire()) break;
      // The node-wide cap, on top of the site's window: woken when another site frees a slot.
      if (!connections.tryAcquire(() => this.wake())) {
        this.#shaping.release();
        break;
      }
      this.#connectionWorker().catch((err) => {
        this.#deps.log.error("actor.worker_failed", { site: this.site, err });
      }).finally(() => {
        connections.release();
        this.#shaping.release();
        this.wake();
      });
    }
  }

  /** One connection's life: open, carry transactions while there is work, idle, close. */
  async #connectionWorker() {
    let session: OutboundSession | null = null;
    let source: Source | null = null;
    try {
      while (!this.#stopping && !this.#suspended && !this.#purging) {
        // The window shrank under a backoff: this connection is one too many.
        if (this.#shaping.window.current > this.#shaping.window.limit) break;
        // An outcome waits for the store: send nothing more until it is committed.
        if (this.#uncommitted.size > 0) break;
        // No attempt starts on a lease that may have gone to another node.
        if (!(await this.#holdLease().catch(() => false)) || !this.#leaseFresh()) {
          if (this.#leased) this.#loseLease(null);
          break;
        }
        const job = this.#ready.shift();
        if (!job) {
          // Idle: no need to keep a slot of the node-wide cap another site is waiting for.
          if (!session || this.#deps.connections.contended) break;
          this.#idle++;
          this.wake(); // the loop now sleeps until the next due entry, not a whole poll
          const got = await this.#waitForJob(this.#shaping.profile.idleTimeoutMs);
          this.#idle--;
          if (!got) break;
          continue;
        }
        if (this.#ready.length < this.#shaping.window.limit) this.wake(); // refill early
        try {
          await this.#shaping.pace(() => this.#stopping);
          // A connection that will carry this job keeps its source; a new one picks afresh.
          const reusable = session !== null && session.usable &&
            session.deliveries < this.#shaping.profile.maxDeliveriesPerConnection;
          const want = await this.#sources.choose(job.msg, job.rows, reusable ? source : null);
          if (want === null) {
            await this.#warmupExhausted(job);
            continue;
          }
          const policyKey = session ? await this.#tlsPolicyKey(job.due.domain) : null;
          if (
            session &&
            (!session.usable ||
              session.deliveries >= this.#shaping.profile.maxDeliveriesPerConnection ||
              source?.address !== want.address ||
              session.policyKey !== policyKey)
          ) {
            await session.close();
            session = null;
          }
          if (session && session.deliveries > 0 && !(await session.reset())) {
            await session.close();
            session = null;
          }
          if (!session) {
            session = await this.#open(job, want);
            source = want;
          }
          if (!session) {
            this.#sources.release(want);
            continue; // #open recorded the outcome
          }
          await this.#deliver(session, job, want);
        } finally {
          this.#finish(job);
        }
      }
    } finally {
      // The connection counts against the site's window and the node's cap until it is closed.
      await session?.close();
    }
  }

  /** Every source is at its warm-up cap here today: try again when the UTC day turns. */
  #warmupExhausted(job: Job) {
    const nextDay = (utcDay(this.#deps.now()) + 1) * 86_400_000;
    return this.#recordAll(
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
  async #tlsPolicyKey(domain: string): Promise<string> {
    // Fresh or not: a stale entry must not make the connection wait for a new lookup.
    const info = this.#deps.directory.peek(domain);
    if (!info) return "unknown";
    const tls = this.#deps.tls;
    // The domain's MTA-STS policy (cached in memory; a TXT lookup the first time).
    if (tls && info.destination.ok && !info.destination.route && info.tlsLevel !== "none") {
      await tls.stsPolicy(domain);
    }
    return tlsPolicyKey(info, tls);
  }

  async #open(job: Job, source: Source): Promise<OutboundSession | null> {
    const info = await this.#deps.directory.lookup(job.due.domain);
    this.#shaping.setProfile(info.profile);
    return await openSession(this.#connector, job, source, info);
  }

  /** An attempt that ended before any transaction (no route, hosts down): logged like the rest. */
  #recordUnsent(
    job: Job,
    outcome: AttemptOutcome,
    options: { neverBounce?: boolean; ms?: number } = {},
  ) {
    const { ms, ...record } = options;
    this.#deps.log.info("delivery.attempt", {
      msg: job.msg.id,
      rcpts: job.rows.length,
      site: this.site,
      result: outcome.kind,
      reply: outcome.reply.slice(0, 300),
      ms: ms ?? 0,
    });
    return this.#recordAll(job, () => outcome, {}, record);
  }

  async #deliver(session: OutboundSession, job: Job, source: Source) {
    const { kv, bodyCache, log } = this.#deps;
    const started = performance.now();
    const outcomes: RecipientOutcome[] = [];
    // With VERP every recipient has its own return path, so its own transaction (as KumoMTA and
    // Postal send): a report that comes back names one delivery, never its neighbours.
    for (const [i, group] of envelopes(job, this.#deps.verp).entries()) {
      if (i > 0 && !(await session.reset())) {
        const reply = "Connection lost between transactions; not attempted";
        outcomes.push(...group.rcpts.map((rcpt) => ({ rcpt, kind: "transient" as const, reply })));
        continue;
      }
      const cached = bodyCache.get(job.msg.id);
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
        site: this.site,
        result: o.kind,
        reply: o.reply.slice(0, 300),
        host: session.info.remoteHost,
        source: session.info.localAddress ?? null,
        tls: session.info.tls ?? null,
        ms: Math.round(performance.now() - started),
      });
    }
    await this.#recordAll(job, (row) => byRcpt.get(row.rcpt)!, session.info, {
      ...(source.warming ? { warmupSource: source.address! } : {}),
      feedback: source.address ?? "",
    });
  }

  #recordAll(
    job: Job,
    outcomeOf: (row: RecipientRow) => AttemptOutcome,
    ctx: AttemptContext,
    options: RecordOptions = {},
  ): Promise<RecipientResult[]> {
    return recordAttempt(this.#recorder, job, outcomeOf, ctx, options);
  }

  /** A recorded attempt's next due times bring the domain's known earliest forward. */
  #noteNextAttempts(domain: string, results: readonly RecipientResult[]) {
    const q = this.#domains.get(domain);
    for (const r of results) {
      if (q && r.nextAttemptAt !== null && q.nextDueAt !== null && r.nextAttemptAt < q.nextDueAt) {
        q.nextDueAt = r.nextAttemptAt;
      }
    }
  }

  /**
   * Removes every queued recipient: each is recorded bounced (with a DSN unless `dsn` is false).
   * Entries in flight finish their attempt instead.
   */
  purge(options: { dsn: boolean }): Promise<number> {
    return purgeSite({
      site: this.site,
      deps: this.#deps,
      domains: this.#domains,
      setPurging: (purging) => {
        this.#purging = purging;
      },
      dropReady: () => {
        for (const job of this.#ready.splice(0)) this.#finish(job);
      },
      hold: (id) => this.#hold(id),
      release: (id) => this.#release(id),
      recordAll: (job, outcomeOf, ctx, options) => this.#recordAll(job, outcomeOf, ctx, options),
      wake: () => this.wake(),
    }, options);
  }

  /** The site as the queue API shows it. */
  view(): Promise<SiteView> {
    return viewSite({
      site: this.site,
      deps: this.#deps,
      domains: this.#domains,
      shaping: this.#shaping,
      hostsDown: this.#hostsDown,
      suspended: () => this.#suspended,
      leased: () => this.#leased,
    });
  }

  async #retire(): Promise<boolean> {
    const { kv, nodeId } = this.#deps;
    for (const domain of [...this.#domains.keys()]) {
      if (await retireDestination(kv, domain)) this.#domains.delete(domain);
    }
    if (this.#domains.size > 0 || this.#mine.size > 0) return false;
    this.#leased = false;
    await releaseSiteLease(kv, this.site, nodeId);
    return true;
  }
}
