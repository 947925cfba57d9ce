/**
 * The mechanism of intake flow control (the rule is core/policy/in_flow.ts): the worker counts
 * each due entry it is handed until the entry's first attempt ends, and the SMTP door asks
 * `admit()` before answering MAIL FROM. The transactions under way count too (at the typical
 * message size, until their message is counted itself): twenty clients sending at once must not
 * all find room at the same moment. While there is no room, transactions wait in turn; each
 * first attempt that ends makes room for about one more (intake follows the delivery rate, as
 * Postfix's flow tokens make it), and none waits longer than `maxDelayMs`.
 *
 * Only a node that delivers counts: on a node without the worker role nothing is ever counted,
 * and nothing waits.
 */
import { metrics } from "./metrics.ts";
import {
  type Backlog,
  IN_FLOW_FORGET_AFTER_MS,
  IN_FLOW_LIMITS,
  type InFlowLimits,
  nextTypicalSize,
  roomForAnother,
} from "./policy/in_flow.ts";

export interface InFlowTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface InFlowOptions {
  /** The longest a transaction waits (POSTERN_IN_FLOW_DELAY); 0 = never. */
  maxDelayMs: number;
  limits?: InFlowLimits;
  now?: () => number;
  timers?: InFlowTimers;
}

interface Waiter {
  go(): void;
  timer: unknown;
}

const systemTimers: InFlowTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** A transaction let go: ended (given back) once it is queued, refused or abandoned. */
export interface InFlowTicket {
  /** Idempotent. */
  release(): void;
}

const NO_TICKET: InFlowTicket = { release() {} };

export class InFlow {
  readonly maxDelayMs: number;
  readonly #limits: InFlowLimits;
  readonly #now: () => number;
  readonly #timers: InFlowTimers;
  /** Entry id → its bytes and when it was counted; oldest first (Map keeps insertion order). */
  #pending = new Map<string, { bytes: number; at: number }>();
  #bytes = 0;
  /** Transactions let go and not yet ended. */
  #starting = 0;
  #typical = 0;
  #waiting: Waiter[] = [];
  /** Transactions that had to wait, and those of them that waited the whole delay. */
  paused = 0;
  timedOut = 0;

  constructor(options: InFlowOptions) {
    this.maxDelayMs = options.maxDelayMs;
    this.#limits = options.limits ?? IN_FLOW_LIMITS;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? systemTimers;
  }

  get backlog(): Backlog {
    return { messages: this.#pending.size, bytes: this.#bytes };
  }

  /** Transactions waiting now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** A due entry of `bytes` was handed to delivery on this node. */
  queued(id: string, bytes: number) {
    if (this.maxDelayMs <= 0 || this.#pending.has(id)) return;
    this.#pending.set(id, { bytes, at: this.#now() });
    this.#bytes += bytes;
    this.#typical = nextTypicalSize(this.#typical, bytes);
  }

  /** The entry's first attempt ended here, or it was left to another node (unknown ids: no-op). */
  done(id: string) {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    this.#bytes -= p.bytes;
    this.#letGo();
  }

  /**
   * Resolves when a new transaction may go on: at once while there is room and nobody waits
   * before it; else in turn as first attempts end and make room, or after the delay. The ticket
   * is given back when the transaction ends.
   */
  admit(): Promise<InFlowTicket> {
    if (this.maxDelayMs <= 0) return Promise.resolve(NO_TICKET);
    this.#forgetStale();
    if (this.#waiting.length === 0 && this.#room()) return Promise.resolve(this.#ticket());
    this.paused++;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        go: () => {
          metrics.inFlowPauses.inc({ ended: "delivery" });
          resolve(this.#ticket());
        },
        timer: this.#timers.setTimeout(() => {
          const at = this.#waiting.indexOf(waiter);
          if (at >= 0) this.#waiting.splice(at, 1);
          metrics.inFlowWaiting.set(this.#waiting.length);
          this.timedOut++;
          metrics.inFlowPauses.inc({ ended: "delay" });
          resolve(this.#ticket());
        }, this.maxDelayMs),
      };
      this.#waiting.push(waiter);
      metrics.inFlowWaiting.set(this.#waiting.length);
    });
  }

  #room(): boolean {
    return roomForAnother(this.backlog, this.#starting, this.#typical, this.#limits);
  }

  #ticket(): InFlowTicket {
    this.#starting++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#starting--;
        this.#letGo();
      },
    };
  }

  /** Waiting transactions go on, in turn, while there is room. */
  #letGo() {
    while (this.#waiting.length > 0 && this.#room()) {
      const waiter = this.#waiting.shift()!;
      metrics.inFlowWaiting.set(this.#waiting.length);
      this.#timers.clearTimeout(waiter.timer);
      waiter.go();
    }
  }

  #forgetStale() {
    const before = this.#now() - IN_FLOW_FORGET_AFTER_MS;
    for (const [id, p] of this.#pending) {
      if (p.at > before) break;
      this.#pending.delete(id);
      this.#bytes -= p.bytes;
    }
  }
}
