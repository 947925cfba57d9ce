/**
 * DKIM signatures made in a pool of Web Workers (core/mail/dkim_worker.ts), so signing uses the
 * machine's other cores instead of the main thread's time; with no workers every signature is
 * made on the calling thread. Where the placement (core/policy/dkim_placement.ts) says so, RSA is
 * signed here while its signatures cost less than the hand-over to a worker, and in the pool once
 * they are measured to cost more.
 *
 * - Only RSA goes to the workers: an Ed25519 signature costs less CPU (about 0.02 ms) than the
 *   hand-over to a worker and back, so a message signed with Ed25519 keys alone is signed here.
 * - Requests made in one turn of the event loop go to a worker in one message, and come back in
 *   one: each `postMessage` and each reply cost the main thread a wake-up of another thread (the
 *   profile under RSA-signed load put 0.14 ms per message in `postMessage` when each request went
 *   alone), and messages whose bodies end together (one group commit) sign together. A request
 *   tried again after a crash goes alone, so one that crashes workers takes no other down twice.
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
import { setImmediate } from "node:timers";
import { type DkimSignatureMaker, type DkimSigningKey, LocalSignatureMaker } from "./dkim.ts";
import type { Logger } from "../log.ts";
import { averageSigningMs, keepSigningInPlace } from "../policy/dkim_placement.ts";

/** What the pool asks a worker: one signature per key, key i over data i. */
export interface SignRequest {
  id: number;
  keys: readonly DkimSigningKey[];
  data: readonly Uint8Array[];
}

/**
 * What a worker is sent: one request, and in `more` the others of its batch. (A batch is still a
 * request at its top, so a worker that looks at one request sees the first.)
 */
export interface SignBatch extends SignRequest {
  more?: SignRequest[];
}

export type SignReply = { id: number; signatures: Uint8Array[] } | { id: number; error: string };

/** A worker's answer: one reply, or one per request of a batch. */
export type SignAnswer = SignReply | SignReply[];

/** Why a signature could not be made now. */
export class DkimUnavailable extends Error {
  override name = "DkimUnavailable";
}

/** Tries per request: the first, and one more on a fresh worker after a crash. */
const MAX_ATTEMPTS = 2;

/** Requests outstanding per worker before new ones are refused. */
export const QUEUE_PER_WORKER = 256;

export interface DkimPoolOptions {
  /** Workers to run; 0 signs every message on the calling thread. */
  workers: number;
  /**
   * Sign RSA on the calling thread while a signature costs at most this many ms (measured), then
   * in the workers for good; 0: always in the workers. @default 0
   */
  inPlaceUpToMs?: number;
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
  /** Requests of this turn, sent together at its end (see the module comment). */
  #pending: Job[] = [];
  /** RSA signed here until its measured cost passes this; 0 once it has (or never set). */
  #inPlaceUpToMs: number;
  /** In-place RSA signatures timed, and their running average cost per signature in ms. */
  #inPlaceSamples = 0;
  #inPlaceAverage: number | null = null;

  constructor(options: DkimPoolOptions) {
    const workers = Math.max(0, Math.floor(options.workers));
    // No workers: everything is signed here, as where workers cannot start.
    this.#noWorkers = workers === 0;
    this.#slots = Array.from({ length: workers }, (_, index) => ({
      index,
      generation: 0,
      worker: null,
      held: new Map(),
    }));
    this.#maxQueued = options.maxQueued ?? Math.max(1, workers) * QUEUE_PER_WORKER;
    this.#log = options.log;
    this.#answerWithinMs = options.answerWithinMs ?? 30_000;
    this.#inPlaceUpToMs = workers > 0 ? options.inPlaceUpToMs ?? 0 : 0;
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
    if (this.#inPlaceUpToMs > 0) return this.#signHereTimed(keys, data);
    if (this.#outstanding >= this.#maxQueued) {
      return Promise.reject(new DkimUnavailable("the signing pool is busy"));
    }
    this.#outstanding++;
    return new Promise<Uint8Array[]>((resolve, reject) => {
      const settle = () => this.#outstanding--;
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({
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

  /** Whether RSA is still signed on the calling thread (the measured cost has not passed). */
  get signingInPlace(): boolean {
    return this.#noWorkers || this.#inPlaceUpToMs > 0;
  }

  /** Signs here and times it; past the placement's cost, later RSA goes to the workers. */
  #signHereTimed(
    keys: readonly DkimSigningKey[],
    data: readonly Uint8Array[],
  ): Promise<Uint8Array[]> {
    const started = performance.now();
    const signed = this.#here.sign(keys, data);
    const rsa = keys.reduce((n, k) => n + (k.algorithm === "rsa" ? 1 : 0), 0);
    const perSignature = (performance.now() - started) / rsa;
    this.#inPlaceSamples++;
    this.#inPlaceAverage = averageSigningMs(this.#inPlaceAverage, perSignature);
    if (!keepSigningInPlace(this.#inPlaceSamples, this.#inPlaceAverage, this.#inPlaceUpToMs)) {
      this.#log?.info("dkim.signing_moved", {
        to: "workers",
        workers: this.#slots.length,
        signature_ms: Math.round(this.#inPlaceAverage * 1000) / 1000,
        up_to_ms: this.#inPlaceUpToMs,
      });
      this.#inPlaceUpToMs = 0;
    }
    return signed;
  }

  /** Stops every worker; requests still outstanding are refused. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
    const pending = this.#pending;
    this.#pending = [];
    for (const job of pending) job.reject(new DkimUnavailable("the signing pool is closed"));
    for (const slot of this.#slots) {
      slot.worker?.terminate();
      slot.worker = null;
      const held = [...slot.held.values()];
      slot.held.clear();
      for (const job of held) job.reject(new DkimUnavailable("the signing pool is closed"));
    }
  }

  /** Sends this turn's requests: each to the least busy worker, one message per worker. */
  #flush() {
    const jobs = this.#pending;
    this.#pending = [];
    const batches = new Map<Slot, Job[]>();
    for (const job of jobs) {
      const slot = this.#leastBusy();
      // Counted as held now, so the next request of the batch weighs the workers fairly.
      slot.held.set(job.request.id, job);
      const batch = batches.get(slot);
      if (batch) batch.push(job);
      else batches.set(slot, [job]);
    }
    for (const [slot, batch] of batches) this.#send(slot, batch);
  }

  /** A request tried again: sent alone, to the least busy worker. */
  #dispatch(job: Job) {
    const slot = this.#leastBusy();
    slot.held.set(job.request.id, job);
    this.#send(slot, [job]);
  }

  /** The least busy worker; ties go to a running one, so workers start only as load needs them. */
  #leastBusy(): Slot {
    let slot = this.#slots[0]!;
    for (const s of this.#slots) {
      const better = s.held.size < slot.held.size ||
        (s.held.size === slot.held.size && slot.worker === null && s.worker !== null);
      if (better) slot = s;
    }
    return slot;
  }

  /** Hands `jobs` (already held by `slot`) to its worker in one message. */
  #send(slot: Slot, jobs: Job[]) {
    let worker: Worker;
    try {
      worker = this.#workerOf(slot);
    } catch (err) {
      this.#log?.warn("dkim.workers_unavailable", { err });
      this.#noWorkers = true;
      for (const job of jobs) {
        slot.held.delete(job.request.id);
        this.#here.sign(job.request.keys, job.request.data).then(job.resolve, job.reject);
      }
      return;
    }
    const now = Date.now();
    for (const job of jobs) {
      job.attempts++;
      job.sentAt = now;
    }
    const [first, ...rest] = jobs.map((j) => j.request);
    const message: SignBatch = rest.length > 0 ? { ...first!, more: rest } : first!;
    worker.postMessage(message);
  }

  #workerOf(slot: Slot): Worker {
    if (slot.worker) return slot.worker;
    const worker = new Worker(this.#url, {
      type: "module",
      name: `dkim-${slot.index}-${slot.generation}`,
    });
    worker.onmessage = (e: MessageEvent<SignAnswer>) => {
      for (const reply of Array.isArray(e.data) ? e.data : [e.data]) {
        const job = slot.held.get(reply.id);
        if (!job) continue;
        slot.held.delete(reply.id);
        if ("error" in reply) job.reject(new DkimUnavailable(`cannot sign: ${reply.error}`));
        else job.resolve(reply.signatures);
      }
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
