/**
 * The deadlines of many SMTP sessions, inbound (smtp/smtp_server_patches.ts: the idle timeout,
 * the wait for a close) and outbound (delivery/reply_timeouts.ts: the wait for each reply), on
 * one timer. A node:timers Timeout costs a few microseconds to make and again to clear (an async
 * id, property definitions, timer ops), paid per session or per change of wait on the main
 * thread, which at saturation opens a session per message. Here a
 * deadline is an entry in a heap; the one timer is set for the earliest and moved only when an
 * earlier one comes, and a deadline that is cancelled costs nothing more than leaving the heap.
 * (The session and DATA deadlines of smtp_server_patches.ts stay node timers: their test checks
 * that each is cleared with clearTimeout.)
 *
 * The timer does not keep the process alive (a session it guards may be the last thing open),
 * and it is cleared as soon as no deadline is left.
 *
 * @module
 */

/** One deadline; `cancel` it to drop it. */
export interface Deadline {
  readonly at: number;
  /** Position in the heap; DUE once taken out to run, GONE once it ran or was cancelled. */
  index: number;
  run: () => void;
}

const DUE = -2;
const GONE = -1;

export class Deadlines {
  readonly #now: () => number;
  #heap: Deadline[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** The clock deadlines are counted on. */
  now(): number {
    return this.#now();
  }

  /** How many deadlines are pending. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `run` once `ms` have passed, unless cancelled first. */
  after(ms: number, run: () => void): Deadline {
    const deadline: Deadline = { at: this.#now() + Math.max(0, ms), index: GONE, run };
    this.#push(deadline);
    if (deadline.at < this.#timerAt) this.#arm(deadline.at);
    return deadline;
  }

  /** Drops a deadline that has not run (anything else is ignored). */
  cancel(deadline: Deadline | undefined) {
    if (!deadline || deadline.index === GONE) return;
    // Due in the same turn as the one that cancels it: it does not run (as with clearTimeout).
    if (deadline.index === DUE) {
      deadline.index = GONE;
      return;
    }
    this.#removeAt(deadline.index);
    // Nothing left to wait for: no timer lingers. Otherwise a timer set for a deadline that is
    // gone fires early, finds nothing due, and is set again for the earliest left.
    if (this.#heap.length === 0) this.#disarm();
  }

  #arm(at: number) {
    this.#disarm();
    this.#timerAt = at;
    const timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(at - this.#now())));
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  #disarm() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  #fire() {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#now();
    const due: Deadline[] = [];
    while (this.#heap.length > 0 && this.#heap[0]!.at <= now) {
      const first = this.#heap[0]!;
      this.#removeAt(0);
      first.index = DUE;
      due.push(first);
    }
    if (this.#heap.length > 0) this.#arm(this.#heap[0]!.at);
    // Run after the heap is settled: a run may add or cancel deadlines.
    for (const d of due) {
      if (d.index !== DUE) continue;
      d.index = GONE;
      d.run();
    }
  }

  #push(d: Deadline) {
    d.index = this.#heap.length;
    this.#heap.push(d);
    this.#up(d.index);
  }

  #removeAt(i: number) {
    const heap = this.#heap;
    const removed = heap[i]!;
    const last = heap.pop()!;
    removed.index = GONE;
    if (last === removed) return;
    heap[i] = last;
    last.index = i;
    this.#down(i);
    this.#up(last.index);
  }

  #up(i: number) {
    const heap = this.#heap;
    const item = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= item.at) break;
      heap[i] = heap[parent]!;
      heap[i]!.index = i;
      i = parent;
    }
    heap[i] = item;
    item.index = i;
  }

  #down(i: number) {
    const heap = this.#heap;
    const item = heap[i]!;
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.at < heap[child]!.at) child++;
      if (heap[child]!.at >= item.at) break;
      heap[i] = heap[child]!;
      heap[i]!.index = i;
      i = child;
    }
    heap[i] = item;
    item.index = i;
  }
}

/**
 * An idle timeout on deadlines: the reads and writes of a connection only `touch()` it (a time
 * stamp), where socket.setTimeout would restart a node Timeout at each; its one deadline, when it
 * comes, finds the connection idle for the whole wait (`onIdle` runs) or waits again for what is
 * left. The wait is asked anew each time, so it may change with what the connection waits for.
 */
export class IdleTimeout {
  readonly #deadlines: Deadlines;
  readonly #waitMs: () => number;
  readonly #onIdle: () => void;
  #activeAt: number;
  #deadline: Deadline | undefined;

  constructor(deadlines: Deadlines, waitMs: () => number, onIdle: () => void) {
    this.#deadlines = deadlines;
    this.#waitMs = waitMs;
    this.#onIdle = onIdle;
    this.#activeAt = deadlines.now();
  }

  /** Bytes moved: the idle count starts again from now. */
  touch() {
    this.#activeAt = this.#deadlines.now();
  }

  /**
   * The count starts again from now, for the current wait: a deadline pending past its end moves
   * to it; one before it stays, and waits again for what is left when it comes.
   */
  restart() {
    this.touch();
    const ms = this.#waitMs();
    if (this.#deadline && this.#deadline.at <= this.#activeAt + ms) return;
    this.#deadlines.cancel(this.#deadline);
    this.#deadline = this.#deadlines.after(ms, this.#check);
  }

  /** No more timeout (the connection closed, or something else times it now). */
  stop() {
    this.#deadlines.cancel(this.#deadline);
    this.#deadline = undefined;
  }

  #check = () => {
    this.#deadline = undefined;
    const idle = this.#deadlines.now() - this.#activeAt;
    const ms = this.#waitMs();
    if (idle < ms) {
      this.#deadline = this.#deadlines.after(ms - idle, this.#check);
      return;
    }
    this.#onIdle();
  };
}

/** The deadlines of this process's SMTP sessions. */
export const sessionDeadlines = new Deadlines();
