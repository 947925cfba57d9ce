/**
 * Checkpoints of a local store's WAL, paced by how much the WAL holds rather than SQLite's
 * default (every 1000 frames, ~2 MB at the store's 2 KiB pages, a few times a second at full
 * load). A checkpoint copies each page the WAL changed into the database file once however often
 * it changed, so a longer window copies the same right-edge leaves, interior pages and free list
 * once instead of at every checkpoint: with checkpoints held off for a whole bench run the relay
 * wrote ~14 % fewer bytes per message (docs/ARCHITECTURE.md, "Store facts and limits"). Deno KV's
 * connection keeps SQLite's default and cannot be given another, so a thread of ours
 * (checkpoint_worker.ts) holds a read snapshot, which keeps that connection's checkpoints from
 * copying frames the snapshot cannot see, and checkpoints itself once the WAL holds
 * `maxWalBytes` or after `maxHoldMs`.
 *
 * Durability does not change: every commit is in the WAL and synced before it is acknowledged,
 * whenever its pages reach the database file. What does: the WAL grows to ~`maxWalBytes` (its
 * file keeps that size, reused from the start after each checkpoint), and opening the store after
 * a crash replays up to that much WAL.
 *
 * One pacer per store file, across processes (a lock file beside it): two pacers each holding
 * a snapshot would never let the WAL start over. Without the thread or the lock the store keeps
 * SQLite's default checkpoints.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { isRemoteStore } from "./kv_file.ts";
import type { PacerCommand, PacerReport } from "./checkpoint_worker.ts";

export interface PacerOptions {
  /** The WAL is checkpointed once it holds this much (default 32 MiB). */
  maxWalBytes?: number;
  /** …or once a snapshot has been held this long (default 60 s). */
  maxHoldMs?: number;
  /** How often the WAL's length is looked at (default 100 ms). */
  pollMs?: number;
  log?: Logger;
  /** Told each checkpoint the thread ran (frames in the WAL, frames copied). */
  onCheckpoint?: (checkpoint: { frames: number; copied: number; busy: boolean }) => void;
}

export interface CheckpointPacer {
  /** Lets go of the snapshot, checkpoints what the WAL holds, and ends the thread. */
  stop(): Promise<void>;
}

export const DEFAULT_MAX_WAL_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_HOLD_MS = 60_000;
const STOP_WAIT_MS = 5_000;

/**
 * Starts pacing the checkpoints of the store file at `path`; null for a remote or in-memory store,
 * or when another process already paces this one.
 */
export async function paceCheckpoints(
  path: string,
  options: PacerOptions = {},
): Promise<CheckpointPacer | null> {
  if (path === ":memory:" || isRemoteStore(path)) return null;
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(`${path}-checkpoints`, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
  } catch {
    // A node allowed to write only the store's own files: it keeps SQLite's checkpoints.
    return null;
  }
  const locked = await lock.tryLock(true).catch(() => false);
  if (!locked) {
    lock.close();
    return null;
  }
  const worker = new Worker(new URL("./checkpoint_worker.ts", import.meta.url), {
    type: "module",
    name: "kv-checkpoints",
  });
  let stopped: (() => void) | undefined;
  let dead = false;
  worker.onmessage = ({ data }: MessageEvent<PacerReport>) => {
    if ("checkpoint" in data) {
      metrics.kvCheckpoints.inc({ busy: String(data.checkpoint.busy) });
      metrics.kvCheckpointFrames.inc({}, Math.max(0, data.checkpoint.copied));
      options.onCheckpoint?.(data.checkpoint);
    } else if ("stopped" in data) {
      stopped?.();
    } else {
      options.log?.warn("store.checkpoints_failed", { error: data.failed });
    }
  };
  worker.onerror = (e) => {
    // Handled here: an unhandled worker error would end the whole relay. Its connection, and the
    // snapshot with it, ends with the thread; SQLite's default checkpoints carry on.
    e.preventDefault();
    dead = true;
    options.log?.warn("store.checkpoints_failed", { error: e.message });
    stopped?.();
  };
  const start: PacerCommand = {
    path,
    maxWalBytes: options.maxWalBytes ?? DEFAULT_MAX_WAL_BYTES,
    maxHoldMs: options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS,
    pollMs: options.pollMs ?? 100,
  };
  worker.postMessage(start);
  return {
    async stop() {
      if (!dead) {
        const done = new Promise<void>((resolve) => (stopped = resolve));
        worker.postMessage({ stop: true } satisfies PacerCommand);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([done, new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
        clearTimeout(timer);
      }
      worker.terminate();
      lock.close();
    },
  };
}
