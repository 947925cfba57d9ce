/**
 * This process's node id, which owns destination leases. Instead of a fresh id on every start,
 * a restart on the same data dir and host takes over the id of the process it replaces, so after
 * a crash it resumes that process's destinations at once rather than waiting out their leases.
 * An exclusive lock on the id file, held for the life of the process and dropped by the kernel
 * when it dies (even by kill -9), keeps two live processes on one data dir from sharing an id.
 */
import { shortId } from "./ids.ts";

export interface NodeIdentity {
  id: string;
  /** The locked id file, or null when another live process holds it. Keep it open. */
  file: Deno.FsFile | null;
}

export async function claimNodeId(dataDir: string, hostname: string): Promise<NodeIdentity> {
  const file = await Deno.open(`${dataDir}/node_id`, { read: true, write: true, create: true });
  // false: another process on this data dir is alive and owns the stored id.
  const locked = await file.tryLock(true).catch(() => false); // a file system without locks
  if (!locked) {
    file.close();
    return { id: shortId("node_", 10), file: null };
  }
  const text = new TextDecoder().decode(await Deno.readFile(`${dataDir}/node_id`));
  const [storedHost, storedId] = text.trim().split(" ");
  // A data dir copied to another machine must not carry that machine's id (and leases) along.
  if (storedHost === hostname && storedId && /^node_[a-z0-9]+$/.test(storedId)) {
    return { id: storedId, file };
  }
  const id = shortId("node_", 10);
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${hostname} ${id}\n`));
  return { id, file };
}

/** Whether a live relay holds this data directory (its node id lock). */
export async function dataDirInUse(dataDir: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(`${dataDir}/node_id`, { read: true, write: true });
  } catch {
    return false; // never started here
  }
  try {
    const locked = await file.tryLock(true).catch(() => true);
    if (locked) await file.unlock().catch(() => {});
    return !locked;
  } finally {
    file.close();
  }
}
