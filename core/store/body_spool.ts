/**
 * Large bodies beside the store. A body in KV is written twice (SQLite's WAL, then the database
 * page at checkpoint) and its pages freed again on delivery: 2.4 bytes to disk per byte of a 1 MB
 * message, and most of its CPU. A body past the inline limit of a store kept in a local file
 * therefore goes to its own file in a directory beside the KV file (`<kv file>-bodies/`), written
 * once as it arrives. It has the same durability as a KV body: the file's data and the
 * directory entry are synced before the message commit that refers to it, so a 250 is only
 * said for a body that survives a crash. A store reached over the network (KV Connect) keeps
 * every body in KV, since other nodes must read it.
 *
 * A file whose message commit never happened is removed by the sweeper once it is an hour old
 * and no message record names it.
 */
import { keys } from "./keys.ts";

const spools = new WeakMap<Deno.Kv, BodySpool>();

/** The spool directory of a store kept in the local file `kvPath` (null for other stores). */
export function spoolDirFor(kvPath: string): string | null {
  if (kvPath === ":memory:" || /^[a-z]+:\/\//i.test(kvPath)) return null;
  return `${kvPath}-bodies`;
}

/**
 * Keeps large bodies of `kv` in `dir` from now on (made 0700 if missing). A process that may not
 * write there (a node allowed to write only the store's own files) still reads spooled bodies,
 * and keeps the bodies it takes in KV.
 */
export async function useBodySpool(kv: Deno.Kv, dir: string): Promise<BodySpool> {
  let writable = true;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable)) {
      throw err;
    }
    writable = false;
  }
  const spool = new BodySpool(dir, writable);
  spools.set(kv, spool);
  return spool;
}

/** The spool of `kv`, or null when its bodies all live in KV. */
export function bodySpoolOf(kv: Deno.Kv): BodySpool | null {
  return spools.get(kv) ?? null;
}

/** The spool new large bodies of `kv` go to, or null when they stay in KV. */
export function writableSpoolOf(kv: Deno.Kv): BodySpool | null {
  const spool = spools.get(kv);
  return spool?.writable ? spool : null;
}

const STALE_AFTER_MS = 60 * 60_000;
/** Bytes read per step when a spooled body is streamed out. */
const READ_SIZE = 256 * 1024;
// Reads, writes and opens are synchronous: they only touch the page cache and take microseconds,
// while the async forms cost a thread hand-off each (most of the relay's CPU for a 1 MB message
// when measured). Only the syncs, which wait for the disk, are asynchronous.

export class BodySpool {
  #dirSync: Coalesced;
  /** Directory syncs completed so far (a shared one counted once). */
  dirSyncs = 0;

  constructor(readonly dir: string, readonly writable = true) {
    this.#dirSync = new Coalesced(async () => {
      using d = await Deno.open(dir, { read: true });
      await d.sync();
      this.dirSyncs++;
    });
  }

  path(id: string): string {
    return `${this.dir}/${id}`;
  }

  /**
   * A new body file for message `id`. Its directory entry starts syncing at once, while the rest
   * of the body is still arriving, so that wait is mostly over by the time the body ends.
   */
  create(id: string): SpoolFile {
    const file = Deno.openSync(this.path(id), {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    return new SpoolFile(this, id, file, this.syncDir());
  }

  /**
   * Makes the directory entries of the files created so far durable. Intakes asking together
   * share one directory sync: one that asks while a sync runs waits for the next, which is the
   * first to start after its file was created and so covers it.
   */
  syncDir(): Promise<void> {
    return this.#dirSync.run();
  }

  async *read(id: string): AsyncGenerator<Uint8Array> {
    using file = Deno.openSync(this.path(id), { read: true });
    for (;;) {
      const buf = new Uint8Array(READ_SIZE);
      let fill = 0;
      while (fill < buf.length) {
        const n = file.readSync(buf.subarray(fill));
        if (n === null) break;
        fill += n;
      }
      if (fill === 0) return;
      yield fill === buf.length ? buf : buf.subarray(0, fill);
      if (fill < buf.length) return;
    }
  }

  /** The body's first `n` bytes (where its header section starts). */
  head(id: string, n: number): Uint8Array | null {
    try {
      using file = Deno.openSync(this.path(id), { read: true });
      const buf = new Uint8Array(n);
      let fill = 0;
      while (fill < n) {
        const got = file.readSync(buf.subarray(fill));
        if (got === null) break;
        fill += got;
      }
      return buf.subarray(0, fill);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  remove(id: string) {
    try {
      Deno.removeSync(this.path(id));
    } catch (err) {
      goneAlready(err);
    }
  }

  /**
   * Removes a delivered body's file off the main thread: unlinking a large file frees its blocks,
   * most of a millisecond at 1 MB, which done in place was 5 % of the main thread at 1 MB messages.
   */
  async drop(id: string) {
    await Deno.remove(this.path(id)).catch(goneAlready);
  }

  /** Removes files older than an hour that no message record names; how many went. */
  async sweep(kv: Deno.Kv, now: number): Promise<number> {
    let swept = 0;
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile) continue;
      const info = await Deno.stat(this.path(entry.name)).catch(() => null);
      if (!info?.mtime || now - info.mtime.getTime() < STALE_AFTER_MS) continue;
      if ((await kv.get(keys.message(entry.name))).value) continue;
      await this.drop(entry.name);
      swept++;
    }
    return swept;
  }
}

/** A file already removed is what removing it asks for; anything else is trouble. */
function goneAlready(err: unknown) {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

/** One body being written to the spool. */
export class SpoolFile {
  #open = true;

  constructor(
    private spool: BodySpool,
    readonly id: string,
    private file: Deno.FsFile,
    /** The sync of the file's directory entry, started when the file was created. */
    private entrySynced: Promise<void>,
  ) {
    // Awaited by finish(); a body discarded before then never asks.
    entrySynced.catch(() => {});
  }

  write(bytes: Uint8Array) {
    for (let o = 0; o < bytes.length;) o += this.file.writeSync(bytes.subarray(o));
  }

  /**
   * Makes the body durable: its data, and its directory entry (whose sync started when the file
   * was created, so it need not wait for the data's).
   */
  async finish() {
    try {
      await Promise.all([this.file.syncData(), this.entrySynced]);
    } finally {
      this.#close();
    }
  }

  /** Removes the file (the message was refused or its commit failed). */
  discard() {
    this.#close();
    this.spool.remove(this.id);
  }

  #close() {
    if (!this.#open) return;
    this.#open = false;
    this.file.close();
  }
}

/** Runs `task` for every caller, sharing runs: a caller waits for a run that starts after it. */
class Coalesced {
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(private task: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.#next) return this.#next;
    if (!this.#running) {
      this.#running = this.task().finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    this.#next = this.#running.catch(() => {}).then(() => {
      this.#next = null;
      return this.run();
    });
    return this.#next;
  }
}
