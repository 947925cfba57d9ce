/**
 * Group commit: one writer, one commit in flight. Every KV commit is an fsync, so instead of one
 * commit per message we gather everything that arrives while a commit runs into the next one.
 * Each caller learns its own result when the commit holding its change returns. While changes
 * arrive closely, a commit that would carry only a few waits a moment for company
 * (core/policy/commit_linger.ts): fewer commits write fewer pages per message.
 *
 * A change carries its own checks. If a batch fails a check, we cannot tell whose check failed,
 * so the batch is replayed one change per commit and each caller gets its own answer.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  addSizes,
  COMMIT_BUDGET,
  type CommitSize,
  describeSize,
  EMPTY_SIZE,
  fits,
  measureChange,
} from "./commit_size.ts";
import { StoreUnavailableError, within } from "./bounded_kv.ts";
import { ForwardingOperation } from "./forwarding_operation.ts";
import { keyId } from "./keys.ts";
import {
  type ArrivalGaps,
  CALLERS_WINDOW,
  companyTarget,
  lingerMs,
  NO_ARRIVALS,
  noteArrival,
  othersSending,
} from "../policy/commit_linger.ts";

export interface Change {
  /** Adds this change's checks and mutations to an atomic operation. */
  apply(op: Deno.AtomicOperation): void;
  /** What `apply` adds (at least), when its caller has measured it already. */
  size?: CommitSize;
}

interface Pending {
  change: Change;
  size: CommitSize;
  /** When it was queued; its caller stops waiting the retry bound after. */
  queuedAt: number;
  /** It arrived while a commit was being written: its caller is not waiting for that commit. */
  behind: boolean;
  resolve(versionstamp: string | null): void;
  reject(err: unknown): void;
}

const LOCKED_RETRIES = 20;
/**
 * How long a commit keeps trying while the store cannot take it (POSTERN_STORE_RETRY): a local
 * file's "database is locked" (each try may itself wait for SQLite's busy timeout, ~5 s), or a
 * remote store that does not answer, whose client retries by itself and never gives up. Past
 * this the commit fails: SMTP clients hear 451 and the HTTP API 503 with Retry-After, and they
 * retry, which is what an unreachable store calls for.
 */
export const DEFAULT_STORE_RETRY_MS = 10_000;
/** A batch that starts after its callers' bound is spent still gets this long to land. */
const MIN_ATTEMPT_MS = 1_000;

export class CommitFailedError extends Error {
  override name = "CommitFailedError";
  /** The store was locked, busy or unreachable throughout: every change in the batch would fail alike. */
  locked = false;
  /** The change exceeds KV's commit limits: it can never be committed as it is. */
  tooLarge = false;
}

export interface CommitterOptions {
  /** @default DEFAULT_STORE_RETRY_MS */
  storeRetryMs?: number;
  /**
   * The store is a local file, which answers each try within SQLite's busy timeout: a try is
   * awaited to its real outcome instead of abandoned at the bound, so "failed" means not written.
   */
  localStore?: boolean;
  now?: () => number;
  /** Longest wait for company before a small commit starts (POSTERN_COMMIT_LINGER); 0: none. */
  lingerMs?: number;
}

export class Committer {
  #kv: Deno.Kv;
  #queue: Pending[] = [];
  #running = false;
  #retryMs: number;
  #now: () => number;
  #localStore: boolean;
  #lingerMs: number;
  #arrivals: ArrivalGaps = NO_ARRIVALS;
  /** Ends a wait for company early, once enough changes have come. */
  #company: (() => void) | null = null;
  /** A commit is being written now. */
  #writing = false;
  /** The last batch carried more than one change, or one that came while a commit was written. */
  #lastHadCompany = false;
  /** Changes that came while the current commit was written. */
  #arrivedWhileWriting = 0;
  /** Callers seen waiting at once in each recent commit: its changes and those behind it. */
  #recentCallers: number[] = [];
  /** How many queued changes end the current wait for company. */
  #companyTarget = 1;
  /** Commits and fsyncs issued, for metrics and the bench. */
  commits = 0;

  constructor(kv: Deno.Kv, options: CommitterOptions = {}) {
    this.#kv = kv;
    this.#retryMs = options.storeRetryMs ?? DEFAULT_STORE_RETRY_MS;
    this.#now = options.now ?? Date.now;
    this.#localStore = options.localStore ?? false;
    this.#lingerMs = options.lingerMs ?? 0;
  }

  /** The store this committer writes to. */
  get kv(): Deno.Kv {
    return this.#kv;
  }

  /** How long a caller may wait for the store (POSTERN_STORE_RETRY). */
  get retryMs(): number {
    return this.#retryMs;
  }

  /**
   * Resolves with the commit's versionstamp once committed (every key the change set carries it),
   * or null if one of the change's checks failed.
   */
  commit(change: Change): Promise<string | null> {
    let size: CommitSize;
    try {
      size = change.size ?? measureChange(change.apply);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!fits(size)) {
      const err = new CommitFailedError(
        `Cannot commit a change of ${describeSize(size)}: a commit holds at most ` +
          describeSize(COMMIT_BUDGET),
      );
      err.tooLarge = true;
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const now = this.#now();
      if (this.#lingerMs > 0) this.#arrivals = noteArrival(this.#arrivals, now);
      this.#queue.push({
        change,
        size,
        queuedAt: now,
        behind: this.#writing,
        resolve,
        reject,
      });
      if (this.#writing) this.#arrivedWhileWriting++;
      if (this.#company && this.#queue.length >= this.#companyTarget) this.#company();
      if (!this.#running) this.#run();
    });
  }

  async #run() {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        if (
          this.#lingerMs > 0 &&
          othersSending(this.#queue.some((p) => p.behind), this.#lastHadCompany)
        ) {
          const waited = this.#now() - this.#queue[0]!.queuedAt;
          this.#companyTarget = companyTarget(this.#recentCallers);
          const wait = lingerMs(
            this.#queue.length,
            waited,
            this.#arrivals,
            this.#lingerMs,
            this.#companyTarget,
          );
          if (wait > 0) await this.#awaitCompany(wait);
        }
        const batch = this.#takeBatch();
        this.#lastHadCompany = batch.length > 1 || batch.some((p) => p.behind);
        this.#arrivedWhileWriting = 0;
        await this.#commitBatch(batch);
        this.#recentCallers.push(batch.length + this.#arrivedWhileWriting);
        if (this.#recentCallers.length > CALLERS_WINDOW) this.#recentCallers.shift();
      }
    } finally {
      this.#running = false;
    }
  }

  /** Waits `ms`, or less if enough changes come meanwhile. */
  #awaitCompany(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      this.#company = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    }).finally(() => this.#company = null);
  }

  #takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let size = EMPTY_SIZE;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      const grown = addSizes(size, next.size);
      if (batch.length > 0 && !fits(grown)) break;
      batch.push(this.#queue.shift()!);
      size = grown;
    }
    return batch;
  }

  async #commitBatch(batch: Pending[]) {
    const deadline = Math.min(...batch.map((p) => p.queuedAt)) + this.#retryMs;
    try {
      const stamp = await this.#commitOnce(batch.map((p) => p.change), deadline);
      if (stamp !== null || batch.length === 1) {
        for (const p of batch) p.resolve(stamp);
        return;
      }
    } catch (err) {
      if (batch.length === 1 || (err instanceof CommitFailedError && err.locked)) {
        for (const p of batch) p.reject(err);
        return;
      }
    }
    // A check or a size limit failed somewhere in the batch: give each change its own answer.
    for (const p of batch) {
      try {
        p.resolve(await this.#commitOnce([p.change], p.queuedAt + this.#retryMs));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  async #commitOnce(changes: Change[], deadline: number): Promise<string | null> {
    const started = this.#now();
    const giveUpAt = Math.max(deadline, started + MIN_ATTEMPT_MS);
    for (let attempt = 0;; attempt++) {
      const op = this.#kv.atomic();
      const folded = foldSums(op);
      for (const c of changes) c.apply(folded.op);
      folded.flush();
      this.#writing = true;
      try {
        // The client of a remote store may go on sending this request after we stop waiting,
        // so a commit reported as failed may still land: callers treat failure as "unknown".
        const res = this.#localStore
          ? await op.commit()
          : await within(op.commit(), giveUpAt - this.#now(), "a commit");
        this.commits++;
        return res.ok ? res.versionstamp : null;
      } catch (err) {
        // Two processes on one SQLite file meet "database is locked"; a remote store may be
        // restarting. Both pass; a check that failed or a refused request does not.
        const spent = err instanceof StoreUnavailableError;
        const transient = spent || TRANSIENT.test(String(err));
        if (transient && !spent && attempt < LOCKED_RETRIES && this.#now() < giveUpAt) {
          await sleep(Math.min(5 + attempt * 10 * (attempt + 1), 1_000));
          continue;
        }
        const failed = new CommitFailedError(
          `Cannot commit to KV: ${(err as Error).message}`,
          { cause: err },
        );
        failed.locked = transient;
        throw failed;
      } finally {
        this.#writing = false;
      }
    }
  }
}

/**
 * `op` with every `sum` held back and folded per key, so a batch's counters (every message's
 * stats, say) cost one mutation per distinct key; `flush` adds them. Sums commute, so the
 * result is what the separate sums would have made.
 */
function foldSums(op: Deno.AtomicOperation): { op: Deno.AtomicOperation; flush(): void } {
  const folding = new FoldingOperation(op);
  return { op: folding.atomic, flush: () => folding.flush() };
}

/** The operation foldSums hands to each change (a ForwardingOperation: no Proxy per commit). */
class FoldingOperation extends ForwardingOperation {
  readonly #sums = new Map<string, { key: Deno.KvKey; n: bigint }>();

  override sum(key: Deno.KvKey, n: bigint): this {
    const id = keyId(key);
    const cur = this.#sums.get(id);
    if (cur) cur.n += n;
    else this.#sums.set(id, { key, n });
    return this;
  }

  flush() {
    // KV sums wrap at 2^64 like the separate sums would.
    for (const { key, n } of this.#sums.values()) this.op.sum(key, BigInt.asUintN(64, n));
  }
}

/** Errors that say the store could not take the commit now, not that the commit is wrong. */
const TRANSIENT = /locked|busy|connection|error sending request|unavailable|timed? ?out/i;
