/**
 * The nodes sharing the store: each writes a heartbeat key that expires unless renewed, so the
 * list of live nodes needs no clean-up after a crash.
 */
import { keys } from "./keys.ts";

export interface NodeBeat {
  id: string;
  hostname: string;
  roles: string[];
  startedAt: number;
  lastBeat: number;
}

/** Writes (renews) a node's heartbeat; it disappears `ttlMs` after the last one. */
export async function writeHeartbeat(kv: Deno.Kv, beat: NodeBeat, ttlMs: number): Promise<void> {
  await kv.set(keys.node(beat.id), beat, { expireIn: ttlMs });
}

export async function removeHeartbeat(kv: Deno.Kv, id: string): Promise<void> {
  await kv.delete(keys.node(id));
}

/**
 * The nodes whose last heartbeat is younger than `ttlMs` (the store deletes expired keys lazily,
 * so the age is checked here too).
 */
export async function listLiveNodes(kv: Deno.Kv, now: number, ttlMs: number): Promise<NodeBeat[]> {
  const out: NodeBeat[] = [];
  for await (const e of kv.list<NodeBeat>({ prefix: keys.nodePrefix() })) {
    if (now - e.value.lastBeat < ttlMs) out.push(e.value);
  }
  return out;
}
