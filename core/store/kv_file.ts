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

/** Opens the KV store at `path`, a file (kept 0600) or a KV Connect URL / `:memory:`. */
export async function openKvFile(path: string): Promise<Deno.Kv> {
  if (path === ":memory:" || /^[a-z]+:\/\//i.test(path)) return await Deno.openKv(path);
  try {
    await Deno.writeFile(path, new Uint8Array(0), { createNew: true, mode: 0o600 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const kv = await Deno.openKv(path);
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    await Deno.chmod(file, 0o600).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  return kv;
}
