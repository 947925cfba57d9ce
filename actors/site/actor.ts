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
 * the store afresh when it holds the lease again. A due entry is in flight at most once: the
 * worker's shared set guards this node, the lease guards other nodes, and the versionstamp check
 * in the outcome commit makes replays no-ops. That check keeps the store right, not the wire: so
 * an entry read from KV is claimed in the shared set *before* it is loaded, and loading re-reads
 * the entry itself. A listing can predate an attempt that was recorded (and let go) while it came
 * back; sent again, it would reach the remote side twice (#claimAll).
 *
 * This file is the loop, the lease and the wake-ups; what the site knows is one SiteState
 * (state.ts) that the connections (connection.ts), the attempt record (attempt.ts), purge and view
 * take. Every number it runs by is in core/policy/actor_tuning.ts.
 */
import type { Committer } from "../../core/store/committer.ts";
import {
  type DueEntry,
  listDue,
  nextDueAfter,
  nextDueAt,
  retireDestination,
} from "../../core/store/queue.ts";
import { releaseSiteLease, trySiteLease } from "../../core/store/leases.ts";
import type { BodyCache } from "../../core/store/body_cache.ts";
import { getSiteControl } from "../../core/store/sites.ts";
import type { Logger } from "../../core/log.ts";
import type { InFlow } from "../../core/in_flow.ts";
import { siteBacklogRoom } from "../../core/policy/in_flow.ts";
import type { SiteProfile } from "../../core/config/shaping.ts";
import type { Pools } from "../../core/config/pools.ts";
import type { SiteView } from "../../core/queue_control.ts";
import type { RetryPolicy } from "../../core/policy/outcome.ts";
import {
  CLAIM_LOADS_AT_ONCE,
  DUE_LIST_BATCH,
  LEASE_RETRY_MIN_MS,
  MIN_DUE_WAIT_MS,
  SITE_LEASE_TTL_MS,
} from "../../core/policy/actor_tuning.ts";
import type { ReplyTimeouts } from "../../delivery/reply_timeouts.ts";
import type { VerpConfig } from "../../core/mail/verp.ts";
import type { SiteDirectory } from "../site_directory.ts";
import type { ConnectionCap } from "../connection_cap.ts";
import type { BounceDeps } from "../bounces.ts";
import type { CredentialSettingsCache } from "../credential_settings.ts";
import type { OutboundTls } from "../outbound_tls.ts";
import { LeaseKeeper, systemTimers, type Timers } from "../actor_loop.ts";
import { type Job, keyId, loadJob } from "./job.ts";
import { SiteState } from "./state.ts";
import { runConnection } from "./connection.ts";
import { purgeSite } from "./purge.ts";
import { viewSite } from "./view.ts";

export type { Job } from "./job.ts";

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
  /** Intake's flow control: told when a handed-over entry's first attempt ends here, or won't. */
  inFlow?: InFlow;
  /** How long a site lease lasts unrenewed: a dead node's sites move after this. @default 30000 */
  leaseTtlMs?: number;
  /** VERP: each recipient's delivery gets its own return path at this bounce domain. */
  verp?: VerpConfig;
  /** MTA-STS, DANE and TLS reports for outbound connections (actors/outbound_tls.ts). */
  tls?: OutboundTls;
  now(): number;
  /** The timers the actor waits on (tests drive them). @default the system's */
  timers?: Timers;
  random?: () => number;
}

export class SiteActor {
  readonly site: string;
  #deps: SiteActorDeps;
  #timers: Timers;
  #s: SiteState;
  #lease: LeaseKeeper;
  /** The connections running, each until it has closed. */
  #connections = new Set<Promise<void>>();
  #done: Promise<void>;

  constructor(
    site: string,
    profile: SiteProfile,
    deps: SiteActorDeps,
    onExit: (actor: SiteActor) => void,
  ) {
    this.site = site;
    this.#deps = deps;
    this.#timers = deps.timers ?? systemTimers;
    const s = this.#s = new SiteState(site, profile, { ...deps, timers: this.#timers });
    this.#lease = s.lease = new LeaseKeeper({
      ttlMs: deps.leaseTtlMs ?? SITE_LEASE_TTL_MS,
      retryMinMs: LEASE_RETRY_MIN_MS,
      now: () => deps.now(),
      take: (at) => trySiteLease(deps.kv, site, deps.nodeId, s.lease.ttlMs, at),
      release: () => releaseSiteLease(deps.kv, site, deps.nodeId),
      // Taken (again): what another node did meanwhile is only in the store, so read it afresh.
      gained: () => {
        for (const q of s.domains.values()) q.more = false;
        s.recheck();
      },
      // Lost (another node took it after this one failed to renew in time): stop at once. What
      // was ready is dropped, the holder sends it; attempts already on the wire finish, and
      // their outcome commits are checked against the due entries, so the store stays right.
      lost: (holder) => {
        deps.log.warn("lease.lost", { site, holder: holder || null });
        s.dropReady();
        for (const q of s.domains.values()) q.nextDueAt = null;
      },
    });
    this.#done = this.#run().catch((err) => {
      deps.log.error("actor.crashed", { site, err });
    }).finally(() => {
      // Whatever this actor held is free for the next one (the worker starts it on its next scan).
      for (const id of [...s.held]) s.release(id);
      onExit(this);
    });
  }

  get domains(): string[] {
    return [...this.#s.domains.keys()];
  }

  /** Whether this node holds the site's lease. */
  get leased(): boolean {
    return this.#lease.held;
  }

  wake() {
    this.#s.wake();
  }

  /** Starts working a domain's due queue (the worker found the domain belongs to this site). */
  adopt(domain: string) {
    if (this.#s.adopt(domain)) this.wake();
  }

  /** Stops working a domain that now belongs to another site; what is in flight finishes. */
  release(domain: string) {
    this.#s.domains.delete(domain);
    this.#s.dropReady(domain);
  }

  /** Intake (on any node) touched the domain's queue marker: read its due entries again. */
  touch(domain: string, touchedAt: number) {
    const q = this.#s.domains.get(domain);
    if (!q) return this.adopt(domain);
    if (q.touchedAt === touchedAt) return;
    q.touchedAt = touchedAt;
    this.#s.recheck(domain);
    this.wake();
  }

  /** Stops taking work; in-flight transactions finish (bounded by the caller's grace). */
  stop(): Promise<void> {
    const s = this.#s;
    s.stopping = true;
    s.dropReady();
    s.notifyJobs();
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
    const s = this.#s;
    this.adopt(job.due.domain);
    // Not the lease holder: the entry is the holder's (its poll finds it). Knock, so that a lease
    // nobody holds is taken and the store read.
    const id = keyId(job.due.key);
    if (!this.#lease.fresh()) {
      this.#deps.inFlow?.done(id); // another node's to send, or a later read's
      s.recheck(job.due.domain);
      return this.wake();
    }
    if (s.stopping) return this.#deps.inFlow?.done(id);
    if (s.inFlight(id)) return;
    if (!s.roomForJob) {
      this.#deps.inFlow?.done(id); // the store keeps it until the site has room
      s.domains.get(job.due.domain)!.more = true;
      return;
    }
    s.hold(id);
    s.addReady(job);
    const room = siteBacklogRoom({
      windowLimit: s.shaping.window.limit,
      paced: s.paused || s.shaping.rateInForce() !== null,
    });
    // Waiting on this destination's pace, not the node's: not intake's backlog.
    if (s.ready.length > room) this.#deps.inFlow?.done(id);
    this.wake();
  }

  retryNow() {
    const s = this.#s;
    s.retryAll = true;
    s.retryAsked++;
    s.hostsDown.clear();
    s.recheck();
    this.wake();
  }

  setSuspended(suspended: boolean) {
    const s = this.#s;
    s.suspended = suspended;
    s.scanAt = 0;
    s.notifyJobs();
    this.wake();
  }

  /**
   * Removes every queued recipient: each is recorded bounced (with a DSN unless `dsn` is false).
   * Entries in flight finish their attempt instead.
   */
  purge(options: { dsn: boolean }): Promise<number> {
    return purgeSite(this.#deps, this.#s, options);
  }

  /** The site as the queue API shows it. */
  view(): Promise<SiteView> {
    return viewSite(this.#deps, this.#s);
  }

  /**
   * Takes due entries a KV read listed into the ready list, in listing order: claims them on
   * this node first, so that no offer and no other actor takes one while it loads, then loads
   * them, each re-reading its entry; one held here already or no longer there as listed is
   * skipped. The loads run CLAIM_LOADS_AT_ONCE at a time: one after another, a burst queued
   * while the lease was being taken (the first mail after a start) waited two store reads per
   * entry before the first connection had anything to send.
   */
  async #claimAll(entries: readonly DueEntry[]) {
    const s = this.#s;
    const claimed: DueEntry[] = [];
    for (const due of entries) {
      if (claimed.length >= s.room) break;
      const id = keyId(due.key);
      if (s.inFlight(id)) continue;
      s.hold(id);
      claimed.push(due);
    }
    let failure: { err: unknown } | null = null;
    for (let i = 0; i < claimed.length; i += CLAIM_LOADS_AT_ONCE) {
      const loads = await Promise.allSettled(
        claimed.slice(i, i + CLAIM_LOADS_AT_ONCE).map((due) => this.#load(due)),
      );
      for (const load of loads) {
        if (load.status === "rejected") failure ??= { err: load.reason };
        else if (load.value) s.ready.push(load.value);
      }
      // A store error ends the read (as the loop's step does); what was not loaded is let go.
      if (failure) {
        for (const due of claimed.slice(i + CLAIM_LOADS_AT_ONCE)) s.release(keyId(due.key));
        throw failure.err;
      }
    }
  }

  /** Loads a claimed entry; the claim is let go when there is nothing to send or it failed. */
  async #load(due: DueEntry): Promise<Job | null> {
    let job: Job | null = null;
    try {
      job = await loadJob(this.#deps.kv, due);
    } finally {
      if (!job) this.#s.release(keyId(due.key));
    }
    return job;
  }

  async #run() {
    const { pollIntervalMs } = this.#deps;
    const s = this.#s;
    while (!s.stopping) {
      try {
        if (await this.#step()) return;
      } catch (err) {
        // A store hiccup (a remote KV timing out, say) must not end the site: log, pause, go on.
        this.#deps.log.error("actor.step_failed", { site: this.site, err });
        await s.wakeup.sleep(pollIntervalMs);
      }
    }
    await Promise.allSettled([...this.#connections]);
    await s.uncommitted.settled(); // the worker's grace bounds this wait
    // Instead of leaving the lease to run out, hand the site over now: a restarted or
    // surviving node takes it at once.
    await this.#lease.release().catch(() => {});
  }

  /** One turn of the actor's loop; true once the site has no work left and retired. */
  async #step(): Promise<boolean> {
    const { kv, now, pollIntervalMs } = this.#deps;
    const s = this.#s;
    const lease = this.#lease;
    s.wakeup.startTurn();
    if (!(await lease.hold())) {
      // Another node works the site: wait for its lease to run out (it renews it while alive),
      // or for a knock (an offer, a touch) to ask again.
      // Asked at least every poll: a holder that let the site go wakes nobody here.
      const wait = Math.min(lease.ttlMs / 3, pollIntervalMs, lease.freeAt - now() + 50);
      await s.wakeup.sleep(Math.max(wait, LEASE_RETRY_MIN_MS));
      return false;
    }
    const lowOnWork = s.ready.length < s.shaping.window.limit;
    const more = [...s.domains.values()].some((q) => q.more);
    if (s.scanAt <= now() || (more && lowOnWork)) {
      s.scanAt = now() + pollIntervalMs;
      s.suspended = (await getSiteControl(kv, this.site))?.suspended ?? false;
      if (!s.paused) await this.#fill();
    }
    s.shaping.noteRecovery();
    if (s.paused) {
      await s.wakeup.sleep(pollIntervalMs);
      return false;
    }
    if (s.ready.length > 0) this.#spawnConnections();
    if (s.shaping.window.current > s.idle || s.ready.length > 0) {
      // Woken by an offer, a connection running low, idling or leaving, or the next poll.
      await s.wakeup.sleep(pollIntervalMs);
      return false;
    }
    // Nothing in flight (connections may idle, waiting for work): sleep until the next due entry.
    const next = await this.#nextDueAt();
    if (next === null && s.held.size === 0 && s.shaping.window.current === 0) {
      return await this.#retire();
    }
    const wait = next === null ? pollIntervalMs : next - now();
    // At least a moment: an entry due now but held elsewhere (a domain that moved) must not spin.
    await s.wakeup.sleep(Math.min(Math.max(wait, MIN_DUE_WAIT_MS), pollIntervalMs));
    s.scanAt = 0;
    return false;
  }

  /** The earliest due time over this site's domains, from memory where known. */
  async #nextDueAt(): Promise<number | null> {
    let min: number | null = null;
    for (const [domain, q] of this.#s.domains) {
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
    const s = this.#s;
    const asked = s.retryAsked;
    const until = s.retryAll ? Number.MAX_SAFE_INTEGER : now();
    let anyMore = false;
    for (const [domain, q] of s.domains) {
      if (!s.retryAll && !q.more && q.nextDueAt !== null && q.nextDueAt > until) continue;
      const entries = await listDue(kv, domain, until, DUE_LIST_BATCH);
      q.more = entries.length === DUE_LIST_BATCH;
      anyMore ||= q.more;
      q.nextDueAt = q.more ? until : await nextDueAfter(kv, domain, until);
      await this.#claimAll(entries);
    }
    // A retry-now asked while this read ran is served by the next one.
    if (!anyMore && s.retryAsked === asked) s.retryAll = false;
    if (s.ready.length > 0) s.notifyJobs();
  }

  #spawnConnections() {
    const { connections, log } = this.#deps;
    const s = this.#s;
    while (s.ready.length > s.idle && s.uncommitted.size === 0) {
      if (!s.shaping.acquire()) break;
      // The node-wide cap, on top of the site's window: woken when another site frees a slot.
      if (!connections.tryAcquire(() => this.wake())) {
        s.shaping.release();
        break;
      }
      const running: Promise<void> = runConnection(this.#deps, s).catch((err) => {
        log.error("actor.worker_failed", { site: this.site, err });
      }).finally(() => {
        connections.release();
        s.shaping.release();
        this.#connections.delete(running);
        this.wake();
      });
      this.#connections.add(running);
    }
  }

  async #retire(): Promise<boolean> {
    const { kv } = this.#deps;
    const s = this.#s;
    for (const domain of [...s.domains.keys()]) {
      if (await retireDestination(kv, domain)) s.domains.delete(domain);
    }
    if (s.domains.size > 0 || s.held.size > 0) return false;
    await this.#lease.release();
    return true;
  }
}
