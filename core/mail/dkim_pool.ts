/**
 * DKIM signatures made in a pool of Web Workers (core/mail/dkim_worker.ts), one per core by
 * default, so signing uses the machine's other cores instead of the main thread's time.
 *
 * - Only RSA goes to the workers: an Ed25519 signature costs less CPU (about 0.02 ms) than the
 *   hand-over to a worker and back, so a message signed with Ed25519 keys alone is signed here.
 * - Bounded: past `maxQueued` requests outstanding a request is refused at once (intake then
 *   answers 451 / 503: the client retries; nothing waits without bound).
 * - A worker that crashes, or holds a request unanswered past `answerWithinMs`, is replaced; the
 *   requests it held go to a fresh worker once more, and a request that fails twice is refused
 *   (the message is deferred, never sent unsigned or lost).
 * - Workers start at the first request (a relay that signs nothing starts none) and are
 *   terminated by {@linkcode DkimPool.close}, which the relay's shutdown calls.
 *
 * @module
 */
import { type DkimSignatureMaker, type DkimSigningKey, LocalSignatureMaker } from "./dkim.ts";
import type { Logger } from "../log.ts";

/** What the pool asks a worker: one signature per key, key i over data i. */
export interface SignRequest {
  id: number;
  keys: readonly DkimSigningKey[];
  data: readonly Uint8Array[];
}

export type SignReply = { id: number; signatures: Uint8Array[] } | { id: number; error: string };

/** Why a signature could not be made now. */
export class DkimUnavailable extends Error {
  override name = "DkimUnavailable";
}

/** Tries per request: the first, and one more on a fresh worker after a crash. */
const MAX_ATTEMPTS = 2;

/** Requests outstanding per worker before new ones are refused. */
export const QUEUE_PER_WORKER = 256;

export interface DkimPoolOptions {
  /** Workers to run (at least 1). */
  workers: number;
  /** Requests outstanding at once before new ones are refused. @default workers × 256 */
  maxQueued?: number;
  log?: Logger;
  /** A worker that leaves a request unanswered this long is replaced. @default 30 000 */
  answerWithinMs?: number;
  /** The worker module (tests put a faulty one in its place). */
  workerUrl?: string | URL;
}

interface Job {
  request: SignRequest;
  attempts: number;
  /** When it was handed to its current worker. */
  sentAt: number;
  resolve(signatures: Uint8Array[]): void;
  reject(err: Error): void;
}

interface Slot {
  index: number;
  /** Bumped on each restart; part of the worker's name. */
  generation: number;
  worker: Worker | null;
  /** Requests sent to the current worker and not yet answered. */
  held: Map<number, Job>;
}

export class DkimPool implements DkimSignatureMaker {
  #slots: Slot[];
  #maxQueued: number;
  #outstanding = 0;
  #nextId = 1;
  #closed = false;
  #log: Logger | undefined;
  #url: string;
  /** Signs on this thread: Ed25519 alone, or everything where workers cannot start. */
  #here = new LocalSignatureMaker();
  /** Set where workers cannot start (a platform without them). */
  #noWorkers = false;
  #answerWithinMs: number;
  /** Looks for workers that stopped answering, while any runs. */
  #watchdog: ReturnType<typeof setInterval> | null = null;

  constructor(options: DkimPoolOptions) {
    const workers = Math.max(1, Math.floor(options.workers));
    this.#slots = Array.from({ length: workers }, (_, index) => ({
      index,
      generation: 0,
      worker: null,
      held: new Map(),
    }));
    this.#maxQueued = options.maxQueued ?? workers * QUEUE_PER_WORKER;
    this.#log = options.log;
    this.#answerWithinMs = options.answerWithinMs ?? 30_000;
    this.#url = String(options.workerUrl ?? new URL("./dkim_worker.ts", import.meta.url));
  }

  /** Workers running now. */
  get running(): number {
    return this.#slots.filter((s) => s.worker !== null).length;
  }

  sign(keys: readonly DkimSigningKey[], data: readonly Uint8Array[]): Promise<Uint8Array[]> {
    if (this.#closed) return Promise.reject(new DkimUnavailable("the signing pool is closed"));
    if (this.#noWorkers || keys.every((k) => k.algorithm === "ed25519")) {
      return this.#here.sign(keys, data);
    }
    if (this.#outstanding >= this.#maxQueued) {
      return Promise.reject(new DkimUnavailable("the signing pool is busy"));
    }
    this.#outstanding++;
    return new Promise<Uint8Array[]>((resolve, reject) => {
      const settle = () => this.#outstanding--;
      this.#dispatch({
        request: { id: this.#nextId++, keys, data },
        attempts: 0,
        sentAt: 0,
        resolve: (s) => {
          settle();
          resolve(s);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
    });
  }

  /** Stops every worker; requests still outstanding are refused. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
    for (const slot of this.#slots) {
      slot.worker?.terminate();
      slot.worker = null;
      const held = [...slot.held.values()];
      slot.held.clear();
      for (const job of held) job.reject(new DkimUnavailable("the signing pool is closed"));
    }
  }

  #dispatch(job: Job) {
    // The least busy worker; ties go to a running one, so workers start only as load needs them.
    let slot = this.#slots[0]!;
    for (const s of this.#slots) {
      const better = s.held.size < slot.held.size ||
        (s.held.size === slot.held.size && slot.worker === null && s.worker !== null);
      if (better) slot = s;
    }
    let worker: Worker;
    try {
      worker = this.#workerOf(slot);
    } catch (err) {
      this.#log?.warn("dkim.workers_unavailable", { err });
      this.#noWorkers = true;
      this.#here.sign(job.request.keys, job.request.data).then(job.resolve, job.reject);
      return;
    }
    job.attempts++;
    job.sentAt = Date.now();
    slot.held.set(job.request.id, job);
    worker.postMessage(job.request);
  }

  #workerOf(slot: Slot): Worker {
    if (slot.worker) return slot.worker;
    const worker = new Worker(this.#url, {
      type: "module",
      name: `dkim-${slot.index}-${slot.generation}`,
    });
    worker.onmessage = (e: MessageEvent<SignReply>) => {
      const job = slot.held.get(e.data.id);
      if (!job) return;
      slot.held.delete(e.data.id);
      if ("error" in e.data) job.reject(new DkimUnavailable(`cannot sign: ${e.data.error}`));
      else job.resolve(e.data.signatures);
    };
    const crashed = (e: Event) => {
      // Handled here: an unhandled worker error would end the whole relay.
      e.preventDefault();
      if (slot.worker !== worker) return;
      this.#restart(slot, e instanceof ErrorEvent ? e.message : e.type);
    };
    worker.onerror = crashed;
    worker.onmessageerror = crashed;
    slot.worker = worker;
    this.#startWatchdog();
    return worker;
  }

  #startWatchdog() {
    if (this.#watchdog !== null) return;
    const watchdog = setInterval(() => {
      const late = Date.now() - this.#answerWithinMs;
      for (const slot of this.#slots) {
        if ([...slot.held.values()].some((job) => job.sentAt <= late)) {
          this.#restart(slot, `no answer within ${this.#answerWithinMs} ms`);
        }
      }
    }, Math.max(10, Math.floor(this.#answerWithinMs / 4)));
    // It must not keep the relay running: close() clears it, and the process may end before.
    Deno.unrefTimer(watchdog);
    this.#watchdog = watchdog;
  }

  #restart(slot: Slot, why: string) {
    slot.worker?.terminate();
    slot.worker = null;
    slot.generation++;
    const held = [...slot.held.values()];
    slot.held.clear();
    this.#log?.warn("dkim.worker_crashed", {
      worker: slot.index,
      error: why,
      requests: held.length,
    });
    for (const job of held) {
      if (this.#closed) job.reject(new DkimUnavailable("the signing pool is closed"));
      else if (job.attempts >= MAX_ATTEMPTS) {
        job.reject(new DkimUnavailable(`the signing worker crashed: ${why}`));
      } else this.#dispatch(job);
    }
  }
}
