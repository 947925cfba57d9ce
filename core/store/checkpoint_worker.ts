/**
 * The checkpoint pacer's thread (checkpoint_pacer.ts says why it exists). It holds a read
 * snapshot of the store on a connection of its own, which keeps Deno KV's connection from
 * copying WAL frames into the database file, and lets go when the WAL holds `maxWalBytes` or
 * has been held `maxHoldMs`: then it checkpoints the WAL itself, off the main thread and off
 * Deno KV's writer thread, waits for the WAL to start over, and holds again.
 *
 * Its SQLite is the one Deno KV runs on (one library in the binary), so the connections share
 * the process's POSIX locks as SQLite intends, and its checkpoint is SQLite's own.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { lowerThreadPriority } from "../mail/thread_priority.ts";

/** What the pacer sends: where the store is and how long a snapshot may be held. */
export interface PacerStart {
  path: string;
  maxWalBytes: number;
  maxHoldMs: number;
  /** How often the WAL's length is looked at. */
  pollMs: number;
}
export type PacerCommand = PacerStart | { stop: true };
/** What the thread says back: each checkpoint it ran, and that it stopped. */
export type PacerReport =
  | { checkpoint: { frames: number; copied: number; busy: boolean } }
  | { stopped: true }
  | { failed: string };

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<PacerCommand>) => void) | null;
  postMessage(message: PacerReport): void;
  close(): void;
};

/**
 * Frames in the WAL now: `mxFrame` of the wal-index header at the start of the -shm file
 * (https://www.sqlite.org/walformat.html, §2.1: native byte order, offset 16, after the version
 * 3007000 at offset 0). It falls to 0 when a writer starts the WAL over. -1: no readable header.
 */
export function walFrames(shmPath: string): number {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(shmPath, { read: true });
    const header = new Uint8Array(20);
    if (file.readSync(header) !== 20) return -1;
    const words = new Uint32Array(header.buffer);
    return words[0] === 3007000 ? words[4]! : -1;
  } catch {
    return -1;
  } finally {
    file?.close();
  }
}

const CHECKPOINT_ATTEMPTS = 50;
/** Something to `Atomics.wait` on: a thread's way to sleep a millisecond. */
const pause = new Int32Array(new SharedArrayBuffer(4));

class Pacer {
  #db: DatabaseSync;
  #held = false;
  #heldSince = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #maxFrames: number;

  constructor(private readonly start: PacerStart) {
    this.#db = new DatabaseSync(start.path);
    // A checkpoint that meets a busy lock skips ahead rather than waits: the next one copies it.
    this.#db.exec("PRAGMA busy_timeout = 0");
    const { page_size } = this.#db.prepare("PRAGMA page_size").get() as { page_size: number };
    this.#maxFrames = Math.max(1000, Math.floor(start.maxWalBytes / page_size));
    this.#hold();
    this.#timer = setInterval(() => {
      try {
        this.#tick();
      } catch (err) {
        scope.postMessage({ failed: err instanceof Error ? err.message : String(err) });
      }
    }, start.pollMs);
  }

  #hold() {
    try {
      this.#db.exec("BEGIN");
      // A deferred transaction takes its snapshot at its first read.
      this.#db.prepare("SELECT count(*) FROM sqlite_master").get();
      this.#held = true;
      this.#heldSince = Date.now();
    } catch {
      // No snapshot (a store still being made): nothing is held, the next tick tries again.
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // no transaction was open
      }
    }
  }

  #release() {
    if (this.#held) this.#db.exec("COMMIT");
    this.#held = false;
  }

  /**
   * Copies every frame it may into the database file, and syncs it (SQLite's PASSIVE mode). Deno
   * KV's connection tries a checkpoint after each of its commits once the WAL is past 1000 frames;
   * while the snapshot was held those tries found nothing to copy, but one under way holds the
   * checkpoint lock for a moment, and PASSIVE never waits: so a refused start is tried again
   * shortly (once this checkpoint runs, Deno KV's tries are the ones refused).
   */
  #checkpoint() {
    for (let attempt = 0; attempt < CHECKPOINT_ATTEMPTS; attempt++) {
      const row = this.#db.prepare("PRAGMA wal_checkpoint(PASSIVE)").get() as
        | { busy: number; log: number; checkpointed: number }
        | undefined;
      if (!row) return;
      if (row.log === -1 && attempt + 1 < CHECKPOINT_ATTEMPTS) {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      scope.postMessage({
        checkpoint: { frames: row.log, copied: row.checkpointed, busy: row.busy !== 0 },
      });
      return;
    }
  }

  #framesAtRelease = -1;
  #releasedAt = 0;

  #tick() {
    const frames = walFrames(`${this.start.path}-shm`);
    if (this.#held) {
      const due = frames >= this.#maxFrames ||
        Date.now() - this.#heldSince >= this.start.maxHoldMs;
      if (!due) return;
      this.#release();
      this.#checkpoint();
      this.#framesAtRelease = frames;
      this.#releasedAt = Date.now();
      return;
    }
    // Held again only once a writer has started the WAL over (after the frames written during
    // the checkpoint were copied too, by Deno KV's own checkpoint at its next commit): a snapshot
    // taken earlier would pin the WAL's end and the WAL would never start over, only grow.
    const restarted = frames >= 0 && frames < this.#framesAtRelease;
    if (restarted || frames < 0 || Date.now() - this.#releasedAt >= this.start.maxHoldMs) {
      this.#hold();
    }
  }

  stop() {
    clearInterval(this.#timer);
    try {
      this.#release();
      this.#checkpoint();
    } finally {
      this.#db.close();
    }
  }
}

let pacer: Pacer | undefined;

scope.onmessage = ({ data }) => {
  try {
    if ("stop" in data) {
      pacer?.stop();
      pacer = undefined;
      scope.postMessage({ stopped: true });
      return;
    }
    // Checkpoints yield the core to the main thread (thread_priority.ts says why).
    lowerThreadPriority();
    pacer = new Pacer(data);
  } catch (err) {
    scope.postMessage({ failed: err instanceof Error ? err.message : String(err) });
  }
};
