/**
 * Group commit: one writer, one commit in flight. Every KV commit is an fsync, so instead of one
 * commit per message we gather everything that arrives while a commit runs into the next one.
 * Each caller learns its own result when the commit holding its change returns; no timer waits
 * for company (docs/ARCHITECTURE.md measured that a window gains nothing).
 *
 * A change carries its own checks. If a batch fails a check, we cannot tell whose check failed,
 * so the batch is replayed one change per commit and each caller gets its own answer.
 */
import { setTimeout as sleep } from "node:timers/promises";

export interface Change {
  /** Adds this change's checks and mutations to an atomic operation. */
  apply(op: Deno.AtomicOperation): void;
  /** Approximate bytes of keys and values (KV caps a commit at 800 KB). */
  bytes: number;
  /** Number of mutations (KV caps a commit at 1000). */
  mutations: number;
  /** Number of checks (a denokv server caps a commit at 10). */
  checks?: number;
}

interface Pending {
  change: Change;
  resolve(versionstamp: string | null): void;
  reject(err: unknown): void;
}

/** KV's commit limits, kept below the hard caps to leave room for key overhead. */
const MAX_BYTES = 760_000;
const MAX_MUTATIONS = 990;
const MAX_CHECKS = 10;
const LOCKED_RETRIES = 20;
/**
 * How long one commit keeps retrying "database is locked". Each try may itself wait for Deno
 * KV's SQLite busy timeout (~5 s), so instead of 20 full tries (100 s while every SMTP client
 * waits for its reply) a lock held longer than this fails the commit: the clients hear 451 and
 * retry, which is what a held lock (another process, a backup tool) calls for.
 */
const LOCKED_DEADLINE_MS = 10_000;

export class CommitFailedError extends Error {
  override name = "CommitFailedError";
  /** The store was locked or busy throughout: every change in the batch would fail alike. */
  locked = false;
}

export class Committer {
  #kv: Deno.Kv;
  #queue: Pending[] = [];
  #running = false;
  /** Commits and fsyncs issued, for metrics and the bench. */
  commits = 0;

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /**
   * Resolves with the commit's versionstamp once committed (every key the change set carries it),
   * or null if one of the change's checks failed.
   */
  commit(change: Change): Promise<string | null> {
    if (change.bytes > MAX_BYTES || change.mutations > MAX_MUTATIONS) {
      return Promise.reject(
        new CommitFailedError(
          `Cannot commit a change of ${change.bytes} bytes and ${change.mutations} mutations: ` +
            `a commit holds at most ${MAX_BYTES} bytes and ${MAX_MUTATIONS} mutations`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ change, resolve, reject });
      if (!this.#running) this.#run();
    });
  }

  async #run() {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#takeBatch();
        await this.#commitBatch(batch);
      }
    } finally {
      this.#running = false;
    }
  }

  #takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let bytes = 0, mutations = 0, checks = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      const c = next.change;
      if (
        batch.length > 0 &&
        (bytes + c.bytes > MAX_BYTES || mutations + c.mutations > MAX_MUTATIONS ||
          checks + (c.checks ?? 0) > MAX_CHECKS)
      ) break;
      batch.push(this.#queue.shift()!);
      bytes += c.bytes;
      mutations += c.mutations;
      checks += c.checks ?? 0;
    }
    return batch;
  }

  async #commitBatch(batch: Pending[]) {
    try {
      const stamp = await this.#commitOnce(batch.map((p) => p.change));
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
        p.resolve(await this.#commitOnce([p.change]));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  async #commitOnce(changes: Change[]): Promise<string | null> {
    const started = Date.now();
    for (let attempt = 0;; attempt++) {
      const op = this.#kv.atomic();
      for (const c of changes) c.apply(op);
      try {
        const res = await op.commit();
        this.commits++;
        return res.ok ? res.versionstamp : null;
      } catch (err) {
        // Two processes on one SQLite file meet "database is locked"; that passes.
        const locked = /locked|busy/i.test(String(err));
        if (locked && attempt < LOCKED_RETRIES && Date.now() - started < LOCKED_DEADLINE_MS) {
          await sleep(5 + attempt * 10);
          continue;
        }
        const failed = new CommitFailedError(`Cannot commit to KV: ${(err as Error).message}`, {
          cause: err,
        });
        failed.locked = locked;
        throw failed;
      }
    }
  }
}
