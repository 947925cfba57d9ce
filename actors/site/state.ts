/**
 * Everything a site actor knows, in one object: its domains' queues, the jobs ready to send, the
 * due entries it holds, its flags (stopping, suspended, purging, retry-now), and the site's
 * shaping, host cool-downs, source choice and held outcomes. The actor (actor.ts) owns it; the
 * parts that work on it (connection.ts, attempt.ts, purge.ts, view.ts) take it and change it only
 * through its methods, so every rule about holding and letting go of an entry is written here.
 */
import type { RecipientResult } from "../../core/store/deliveries.ts";
import type { Logger } from "../../core/log.ts";
import type { InFlow } from "../../core/in_flow.ts";
import type { SiteProfile } from "../../core/config/shaping.ts";
import { MAX_READY_JOBS } from "../../core/policy/actor_tuning.ts";
import { type LeaseKeeper, type Timers, Wakeup } from "../actor_loop.ts";
import { type Job, keyId } from "./job.ts";
import { SiteShaping } from "./shaping.ts";
import { HostCooldown } from "./host_cooldown.ts";
import { SourceChooser, type SourceChooserDeps } from "./source_chooser.ts";
import { UncommittedOutcomes } from "./uncommitted_outcomes.ts";

/** A connection waiting for a job: until when, and how it is told. */
interface JobWaiter {
  at: number;
  resolve(got: boolean): void;
}

/** One recipient domain's due queue, as the site knows it. */
export interface DomainQueue {
  /** The earliest due time known to be in KV; null: unknown, read it. */
  nextDueAt: number | null;
  /** The last read filled a whole batch: more may be due. */
  more: boolean;
  /** The worker saw intake touch this domain's queue marker at this time. */
  touchedAt: number;
}

export interface SiteStateDeps extends SourceChooserDeps {
  log: Logger;
  /** Due entries in flight on this node, across all actors (a domain may change sites). */
  inflight: Set<string>;
  timers: Timers;
  /** Intake's flow control, told when an entry's attempt here has ended. */
  inFlow?: InFlow | undefined;
}

export class SiteState {
  readonly site: string;
  readonly domains = new Map<string, DomainQueue>();
  /** Jobs taken from the queue, waiting for a connection. */
  readonly ready: Job[] = [];
  /** Due entries this site holds (ready or being delivered). */
  readonly held = new Set<string>();
  readonly shaping: SiteShaping;
  readonly hostsDown = new HostCooldown();
  readonly sources: SourceChooser;
  /** Outcomes the store refused: while any waits, the site takes no new work. */
  readonly uncommitted: UncommittedOutcomes;
  /** The loop's sleep; anything that may give the loop work wakes it. */
  readonly wakeup: Wakeup;
  /** The site's lease, set by the actor that owns this state. */
  lease!: LeaseKeeper;
  stopping = false;
  suspended = false;
  purging = false;
  /** Retry now: read due entries regardless of their due time until the queue is drained. */
  retryAll = false;
  /** Counts retry-now requests, so one made while a read runs is not cleared by that read. */
  retryAsked = 0;
  /** Connections open and waiting for a job. */
  idle = 0;
  /** When the loop reads the store next (0: on its next turn). */
  scanAt = 0;
  #deps: SiteStateDeps;
  #jobWaiters = new Set<JobWaiter>();
  /** The one idle timer of the site's waiting connections, and the deadline it is set for. */
  #idleTimer: unknown = null;
  #idleTimerAt = Infinity;

  constructor(site: string, profile: SiteProfile, deps: SiteStateDeps) {
    this.site = site;
    this.#deps = deps;
    this.wakeup = new Wakeup(deps.timers);
    this.sources = new SourceChooser(site, deps);
    this.shaping = new SiteShaping(site, profile, {
      log: deps.log,
      sources: this.sources,
      now: () => deps.now(),
      timers: deps.timers,
    });
    this.uncommitted = new UncommittedOutcomes({
      site,
      log: deps.log,
      timers: deps.timers,
      committed: (id) => this.release(id),
      drained: () => this.wake(),
    });
  }

  wake() {
    this.wakeup.wake();
  }

  /** No new work now: suspended, purging, or an outcome waits for the store. */
  get paused(): boolean {
    return this.suspended || this.purging || this.uncommitted.size > 0;
  }

  /** Starts working a domain's due queue; true when it is new here. */
  adopt(domain: string): boolean {
    if (this.domains.has(domain)) return false;
    this.domains.set(domain, { nextDueAt: null, more: false, touchedAt: 0 });
    this.scanAt = 0;
    return true;
  }

  /** Reads the domain's queue again on the next turn (all domains without one). */
  recheck(domain?: string) {
    const queues = domain === undefined ? this.domains.values() : [this.domains.get(domain)];
    for (const q of queues) if (q) q.nextDueAt = null;
    this.scanAt = 0;
  }

  /** Claims a due entry on this node (no offer and no other actor takes it meanwhile). */
  hold(id: string) {
    this.#deps.inflight.add(id);
    this.held.add(id);
  }

  /** Whether the entry is claimed anywhere on this node. */
  inFlight(id: string): boolean {
    return this.#deps.inflight.has(id);
  }

  /** Lets go of a claimed entry: its attempt ended, or it was never made here. */
  release(id: string) {
    this.#deps.inflight.delete(id);
    this.held.delete(id);
    this.#deps.inFlow?.done(id);
  }

  /** A job is done with here; its entry stays claimed while its outcome waits for the store. */
  finish(job: Job) {
    const id = keyId(job.due.key);
    if (!this.uncommitted.has(id)) this.release(id);
  }

  /** Lets go of every ready job (or those of one domain). */
  dropReady(domain?: string) {
    let kept = 0;
    for (const job of this.ready) {
      if (domain === undefined || job.due.domain === domain) this.finish(job);
      else this.ready[kept++] = job;
    }
    this.ready.length = kept;
  }

  /** Whether the ready list has room for one more job. */
  get roomForJob(): boolean {
    return this.room > 0;
  }

  /** How many more jobs the ready list has room for. */
  get room(): number {
    return MAX_READY_JOBS - this.ready.length;
  }

  /** Adds a job to the ready list and tells idle connections. */
  addReady(job: Job) {
    this.ready.push(job);
    this.notifyJobs();
  }

  /** Lets every connection waiting for a job look again. */
  notifyJobs() {
    const waiters = [...this.#jobWaiters];
    this.#jobWaiters.clear();
    // Halted, nobody waits again: no idle timer is left to hold the process.
    if (this.halted) this.#disarmIdle();
    for (const w of waiters) w.resolve(true);
  }

  /** Stopping, suspended or purging: no connection may start another transaction. */
  get halted(): boolean {
    return this.stopping || this.suspended || this.purging;
  }

  /**
   * Waits until a job is offered (true) or `ms` pass (false); false at once when halted. A flag
   * raised while the connection awaited something else (a lease renewal) notified no waiter, so
   * without that check the connection would idle out its whole idle timeout, and a stop wait it.
   *
   * Every offer wakes every waiting connection, and all but one wait again at once: a timer set
   * and cleared per wait cost more than the rest of the wait. The waits share one timer instead,
   * set for the earliest deadline and moved only when a wait ends sooner; when it fires it ends
   * the waits that are due and is set again for the next.
   */
  waitForJob(ms: number): Promise<boolean> {
    if (this.halted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = { at: this.#deps.now() + ms, resolve };
      this.#jobWaiters.add(waiter);
      if (waiter.at < this.#idleTimerAt) this.#armIdle(waiter.at);
    });
  }

  #armIdle(at: number) {
    const { timers, now } = this.#deps;
    this.#disarmIdle();
    this.#idleTimerAt = at;
    this.#idleTimer = timers.setTimeout(() => this.#idleTimerFired(at), Math.max(0, at - now()));
  }

  #disarmIdle() {
    if (this.#idleTimer !== null) this.#deps.timers.clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    this.#idleTimerAt = Infinity;
  }

  /** The waits due by `at` (the deadline the timer was set for) end; the timer moves on. */
  #idleTimerFired(at: number) {
    this.#idleTimer = null;
    this.#idleTimerAt = Infinity;
    let next = Infinity;
    const due: JobWaiter[] = [];
    for (const w of this.#jobWaiters) {
      if (w.at <= at) due.push(w);
      else if (w.at < next) next = w.at;
    }
    for (const w of due) this.#jobWaiters.delete(w);
    if (next < Infinity) this.#armIdle(next);
    for (const w of due) w.resolve(false);
  }

  /** A recorded attempt's next due times bring the domain's known earliest forward. */
  noteNextAttempts(domain: string, results: readonly RecipientResult[]) {
    const q = this.domains.get(domain);
    for (const r of results) {
      if (q && r.nextAttemptAt !== null && q.nextDueAt !== null && r.nextAttemptAt < q.nextDueAt) {
        q.nextDueAt = r.nextAttemptAt;
      }
    }
  }

  /** Holds a job's outcome the store refused; its entry stays claimed until it is committed. */
  holdUncommitted(job: Job, commit: () => Promise<void>, err: unknown) {
    this.uncommitted.hold(keyId(job.due.key), commit, err);
  }
}
