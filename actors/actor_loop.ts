/**
 * The plumbing every long-lived actor loop needs (the site actors and the webhook actors): timers
 * it can be handed (so tests drive time instead of sleeping), a sleep that a wake-up cuts short,
 * and a lease renewed before it runs out, taken by one attempt however many callers ask at once.
 */
import type { LeaseAttempt } from "../core/store/leases.ts";
import { LEASE_FRESH_FRACTION, LEASE_RENEW_FRACTION } from "../core/policy/actor_tuning.ts";

/** The timers an actor waits on; injected beside `now()` so tests can drive them. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Resolves after `ms` on `timers`. */
export function sleep(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.setTimeout(resolve, Math.max(0, ms)));
}

/** An actor's sleep between turns, which a wake-up (an offer, a knock, a stop) ends early. */
export class Wakeup {
  #timers: Timers;
  #wakeUp: (() => void) | null = null;
  /** A wake-up came while the loop was not asleep: its next sleep ends at once. */
  #early = false;

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  wake() {
    const w = this.#wakeUp;
    this.#wakeUp = null;
    if (w) w();
    else this.#early = true;
  }

  /** The turn starting now looks at everything a wake-up so far asked for. */
  startTurn() {
    this.#early = false;
  }

  sleep(ms: number): Promise<void> {
    // Woken during the turn (after it looked): look again now instead of after a whole wait.
    if (this.#early) {
      this.#early = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = this.#timers.setTimeout(() => {
        this.#wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.#wakeUp = () => {
        this.#timers.clearTimeout(timer);
        resolve();
      };
    });
  }
}

export interface LeaseKeeperOptions {
  ttlMs: number;
  /** Not held: asked again no sooner than this after a refusal. */
  retryMinMs: number;
  now(): number;
  /** Takes or renews the lease in the store at time `at`. */
  take(at: number): Promise<LeaseAttempt>;
  /** Hands the lease back in the store. */
  release(): Promise<void>;
  /** Taken after not being held: what happened meanwhile is only in the store. */
  gained?(): void;
  /** Held, and now another node has it (`holder`, null when unknown) or it may have. */
  lost?(holder: string | null): void;
}

/** A lease in the store, held by this node and renewed while it works. */
export class LeaseKeeper {
  readonly ttlMs: number;
  #o: LeaseKeeperOptions;
  #held = false;
  #renewedAt = 0;
  /** A lease attempt under way: callers share it instead of racing. */
  #taking: Promise<boolean> | null = null;
  #retryAt = 0;
  #freeAt = 0;

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
    this.ttlMs = options.ttlMs;
  }

  get held(): boolean {
    return this.#held;
  }

  /** When another node's lease runs out unless renewed. */
  get freeAt(): number {
    return this.#freeAt;
  }

  /** Held and renewed recently enough to start work on it. */
  fresh(): boolean {
    return this.#held && this.#o.now() - this.#renewedAt < this.ttlMs * LEASE_FRESH_FRACTION;
  }

  /** Takes or renews the lease when due; concurrent callers share one attempt. */
  hold(): Promise<boolean> {
    const now = this.#o.now();
    if (this.#held && now - this.#renewedAt < this.ttlMs * LEASE_RENEW_FRACTION) {
      return Promise.resolve(true);
    }
    if (!this.#held && now < this.#retryAt) return Promise.resolve(false);
    this.#taking ??= this.#take().finally(() => (this.#taking = null));
    return this.#taking;
  }

  /** Counts the lease as gone (another node may hold it now). */
  lose(holder: string | null) {
    this.#held = false;
    this.#o.lost?.(holder);
  }

  /** Hands the lease over now instead of leaving it to run out. */
  async release(): Promise<void> {
    this.#held = false;
    await this.#o.release();
  }

  async #take(): Promise<boolean> {
    const had = this.#held;
    const at = this.#o.now();
    let attempt;
    try {
      attempt = await this.#o.take(at);
    } catch (err) {
      // The store did not answer: the lease counts as held only while it surely is.
      if (had && !this.fresh()) this.lose(null);
      throw err;
    }
    if (attempt.ok) {
      this.#held = true;
      this.#renewedAt = at;
      if (!had) this.#o.gained?.();
      return true;
    }
    if (had) this.lose(attempt.owner);
    // Ask again when the holder's lease would run out, unless woken (a knock) sooner.
    this.#retryAt = this.#o.now() + this.#o.retryMinMs;
    this.#freeAt = attempt.until;
    return false;
  }
}

/** Calls `fn` now and then every `ms`, not waiting for it (as setInterval does); returns the stop. */
export function every(timers: Timers, ms: number, fn: () => void): () => void {
  let handle: unknown;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    handle = timers.setTimeout(tick, ms);
    fn();
  };
  tick();
  return () => {
    stopped = true;
    timers.clearTimeout(handle);
  };
}

/** Stops every actor, waiting at most `graceMs` for what they have in flight. */
export async function stopAll(
  timers: Timers,
  actors: Iterable<{ stop(): Promise<void> }>,
  graceMs: number,
): Promise<void> {
  let handle: unknown;
  const grace = new Promise<void>((resolve) => (handle = timers.setTimeout(resolve, graceMs)));
  try {
    await Promise.race([Promise.all([...actors].map((a) => a.stop())), grace]);
  } finally {
    timers.clearTimeout(handle);
  }
}
