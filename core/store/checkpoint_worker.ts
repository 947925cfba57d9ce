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
import { lowerThreadPriority, nameThread } from "../mail/thread_priority.ts";

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
};

const CHECKPOINT_ATTEMPTS = 50;
/** Something to `Atomics.wait` on: a thread's way to sleep a millisecond. */
const pause = new Int32Array(new SharedArrayBuffer(4));

/** What `PRAGMA wal_checkpoint` answers: frames in the WAL and frames in the file (-1: not run). */
interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

class Pacer {
  /** Holds the snapshot, and checkpoints once it has let go. */
  #db: DatabaseSync;
  /**
   * Asks how long the WAL is, by a checkpoint that can copy only frames the snapshot already sees
   * (so next to nothing). Never by reading the -shm file: closing any descriptor of a file drops
   * every POSIX lock the process holds on it, SQLite's included, and another process could then
   * write while Deno KV's connection believes it holds the write lock.
   */
  #probe: DatabaseSync;
  #held = false;
  #heldSince = 0;
  /** The WAL's length when the snapshot was let go, and when: a shorter WAL has started over. */
  #framesAtRelease = -1;
  #releasedAt = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #maxFrames: number;

  constructor(private readonly start: PacerStart) {
    this.#db = new DatabaseSync(start.path);
    this.#probe = new DatabaseSync(start.path);
    // A checkpoint that meets a busy lock skips ahead rather than waits: the next one copies it.
    this.#db.exec("PRAGMA busy_timeout = 0");
    this.#probe.exec("PRAGMA busy_timeout = 0");
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
  #checkpoint(framesHeld = -1) {
    for (let attempt = 0; attempt < CHECKPOINT_ATTEMPTS; attempt++) {
      const row = passive(this.#db);
      if (!row) return;
      if (row.log === -1 && attempt + 1 < CHECKPOINT_ATTEMPTS) {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      // Between the release and this checkpoint, Deno KV's own try may have copied the whole WAL
      // and a writer started it over: a WAL shorter than the one let go was copied in full, so
      // the window's frames are reported, not the new WAL's few (or none).
      const restarted = row.log >= 0 && row.log < framesHeld;
      scope.postMessage({
        checkpoint: restarted
          ? { frames: framesHeld, copied: framesHeld, busy: row.busy !== 0 }
          : { frames: row.log, copied: row.checkpointed, busy: row.busy !== 0 },
      });
      return;
    }
  }

  #tick() {
    // -1: the probe met Deno KV's own checkpoint try; looked at again next tick.
    const frames = passive(this.#probe)?.log ?? -1;
    if (frames < 0) return;
    if (this.#held) {
      const due = frames >= this.#maxFrames ||
        Date.now() - this.#heldSince >= this.start.maxHoldMs;
      if (!due) return;
      this.#release();
      this.#checkpoint(frames);
      this.#framesAtRelease = frames;
      this.#releasedAt = Date.now();
      return;
    }
    // Held again only once a writer has started the WAL over (after the frames written during
    // the checkpoint were copied too, by the probe above or Deno KV's own tries): a snapshot
    // taken earlier would pin the WAL's end and the WAL would never start over, only grow.
    const restarted = frames < this.#framesAtRelease;
    if (restarted || Date.now() - this.#releasedAt >= this.start.maxHoldMs) {
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
      this.#probe.close();
    }
  }
}

function passive(db: DatabaseSync): CheckpointRow | undefined {
  return db.prepare("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointRow | undefined;
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
    nameThread("kv-checkpoints");
    pacer = new Pacer(data);
  } catch (err) {
    scope.postMessage({ failed: err instanceof Error ? err.message : String(err) });
  }
};
