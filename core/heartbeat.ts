/**
 * A node's heartbeat in the store, for `GET /v1/nodes` and for the warning that another node
 * shares the store (several nodes on one store must each know the others are there: the README's
 * "Deploying" section says what they share).
 */
import type { Logger } from "./log.ts";
import { listLiveNodes, type NodeBeat, removeHeartbeat, writeHeartbeat } from "./store/nodes.ts";

/** How often a node renews its heartbeat; it counts as gone after three missed ones. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_INTERVAL_MS;

export interface HeartbeatOptions {
  id: string;
  hostname: string;
  roles: string[];
  log: Logger;
  now(): number;
}

/** Writes the first heartbeat, warns about other live nodes, and renews it until stopped. */
export async function startHeartbeat(
  kv: Deno.Kv,
  options: HeartbeatOptions,
): Promise<{ stop(): Promise<void> }> {
  const { id, hostname, roles, log, now } = options;
  const startedAt = now();
  const beat = (): NodeBeat => ({ id, hostname, roles, startedAt, lastBeat: now() });
  const others = (await listLiveNodes(kv, now(), HEARTBEAT_TTL_MS)).filter((n) => n.id !== id);
  if (others.length > 0) {
    log.warn("node.shared_store", {
      node: id,
      others: others.map((n) => ({ id: n.id, hostname: n.hostname, roles: n.roles })),
      note: "other nodes use this store: they share its queue, leases and limits",
    });
  }
  await writeHeartbeat(kv, beat(), HEARTBEAT_TTL_MS);
  const timer = setInterval(() => {
    writeHeartbeat(kv, beat(), HEARTBEAT_TTL_MS).catch((err) =>
      log.warn("heartbeat.failed", { err })
    );
  }, HEARTBEAT_INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      await removeHeartbeat(kv, id).catch(() => {});
    },
  };
}
