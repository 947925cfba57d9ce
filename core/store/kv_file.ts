import { DatabaseSync } from "node:sqlite";

/**
 * Where the store lives on disk, readable by this server's user alone: the data directory is
 * made (or tightened to) mode 0700 and the KV file with its WAL and shared-memory files 0600.
 * The KV file is created empty with mode 0600 before SQLite opens it (an empty file is an empty
 * database), because SQLite gives the WAL and -shm files the mode of the database file.
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dataDir, 0o700); // a directory made by an older version, or by hand
}

/**
 * SQLite pages of a new store. Every commit appends each page it changed to the WAL (and a
 * checkpoint copies it to the file again), and a message's keys land in a dozen different pages:
 * at SQLite's default 4 KiB most of each page written is bytes that did not change. Measured with
 * tests/write_amplification_test.ts (the expiry index narrowed as below): 4096 → 31 KB written to
 * disk per 2 KB message, 2048 → 20–23, 1024 → 24–27 (checkpoints then write whole 4 KiB pages of
 * the OS for each small page). A store made by an older version keeps its page size.
 */
export const STORE_PAGE_SIZE = 2048;

/**
 * Whether `path` names a remote store (a KV Connect URL). A local file answers every call within
 * SQLite's busy timeout, so its commits are awaited to their real outcome; a remote store's client
 * retries without end and has to be bounded (bounded_kv.ts), leaving an abandoned commit unknown.
 */
export function isRemoteStore(path: string): boolean {
  return /^[a-z]+:\/\//i.test(path);
}

/** Opens the KV store at `path`, a file (kept 0600) or a KV Connect URL / `:memory:`. */
export async function openKvFile(path: string): Promise<Deno.Kv> {
  if (path === ":memory:" || isRemoteStore(path)) return await Deno.openKv(path);
  try {
    await Deno.writeFile(path, new Uint8Array(0), { createNew: true, mode: 0o600 });
    // The page size is fixed when SQLite first writes the file: before Deno KV makes its tables.
    tuneSqlite(path, (db) => {
      db.exec(
        `PRAGMA page_size = ${STORE_PAGE_SIZE}; PRAGMA journal_mode = WAL; ` +
          "CREATE TABLE postern_init (x); DROP TABLE postern_init;",
      );
    });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const kv = await Deno.openKv(path);
  tuneSqlite(path, narrowExpiryIndex);
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    await Deno.chmod(file, 0o600).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  return kv;
}

/**
 * Runs `fn` on a connection of our own to the store's SQLite file. Best effort: these only save
 * writes, so a store that cannot take them (another process holding it busy) opens as it is.
 */
function tuneSqlite(path: string, fn: (db: DatabaseSync) => void) {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 5000");
    fn(db);
  } catch {
    // left as Deno KV makes it
  } finally {
    db?.close();
  }
}

/**
 * Deno KV indexes every key by its expiry time, -1 for "never": so each set and delete also
 * changes a page of that index, though only its sweep of expired keys reads it, and that sweep
 * asks only for `expiration_ms >= 0`. A partial index over just those keys serves both of its
 * queries and leaves the index alone when a key without expiry is written: half the pages a
 * commit changes. Done once per store (the index keeps its name; Deno KV never re-creates it).
 */
function narrowExpiryIndex(db: DatabaseSync) {
  const row = db.prepare(
    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'kv_expiration_ms_idx'",
  ).get() as { sql?: string } | undefined;
  if (!row?.sql || /where/i.test(row.sql)) return;
  db.exec(
    "BEGIN IMMEDIATE; DROP INDEX kv_expiration_ms_idx; " +
      "CREATE INDEX kv_expiration_ms_idx ON kv (expiration_ms) WHERE expiration_ms >= 0; COMMIT;",
  );
}
