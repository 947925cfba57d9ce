/**
 * Timers a test drives (actors/actor_loop.ts `Timers`), with the clock they run on: nothing fires
 * until the test moves time, so an actor's waits (poll intervals, retry back-offs, idle
 * connections) take no wall-clock time and happen in a known order.
 */
import type { Timers } from "../../actors/actor_loop.ts";

export class FakeTimers implements Timers {
  #now: number;
  #seq = 0;
  #pending = new Map<number, { at: number; fn: () => void }>();
  #onSet = new Set<() => void>();

  constructor(start = Date.now()) {
    this.#now = start;
  }

  /** The fake clock, to pass as an actor's `now`. */
  now = (): number => this.#now;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#pending.set(id, { at: this.#now + Math.max(0, ms), fn });
    const waiters = [...this.#onSet];
    this.#onSet.clear();
    for (const w of waiters) w();
    return id;
  }

  clearTimeout(handle: unknown) {
    this.#pending.delete(handle as number);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Resolves once a timer is pending (at once when one is). */
  waitForTimer(): Promise<void> {
    if (this.#pending.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.#onSet.add(resolve));
  }

  /**
   * Waits for a timer to be set, moves the clock to the earliest one and fires it, then lets what
   * it started run up to its next wait. Returns how far the clock moved.
   */
  async fireNext(): Promise<number> {
    await this.waitForTimer();
    const [id, next] = [...this.#pending].reduce((a, b) => (b[1].at < a[1].at ? b : a));
    const moved = Math.max(0, next.at - this.#now);
    this.#now = Math.max(this.#now, next.at);
    this.#pending.delete(id);
    next.fn();
    await settle();
    return moved;
  }

  /** Moves the clock forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number) {
    const until = this.#now + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#now = Math.max(this.#now, due[1].at);
      this.#pending.delete(due[0]);
      due[1].fn();
      await settle();
    }
    this.#now = until;
  }
}

/** Lets promise callbacks and I/O already done run (one turn of the event loop). */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
