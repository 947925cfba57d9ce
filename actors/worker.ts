/**
 * The worker role: starts a destination actor for every destination with queued work and lets
 * idle ones go. It hears about new mail from intake in-process (QueueSignal) and, for work queued
 * by other nodes, retries that came due and recovery after a restart, re-reads the queue keys.
 */
import { DestinationActor, type DestinationDeps } from "./destination.ts";
import type { QueueSignal } from "../core/queue_signal.ts";
import { listQueuedDestinations } from "../core/store/queue.ts";
import { keys } from "../core/store/keys.ts";
import type { RecipientRow } from "../core/model.ts";

export interface Worker {
  stop(graceMs: number): Promise<void>;
  readonly actors: ReadonlyMap<string, DestinationActor>;
}

export function startWorker(deps: DestinationDeps & { signal: QueueSignal }): Worker {
  const actors = new Map<string, DestinationActor>();
  let stopped = false;

  function ensure(domain: string): DestinationActor | undefined {
    if (stopped) return undefined;
    let actor = actors.get(domain);
    if (!actor) {
      actor = new DestinationActor(domain, deps, () => {
        if (actors.get(domain) === actor) actors.delete(domain);
      });
      actors.set(domain, actor);
    }
    return actor;
  }

  const unsubscribe = deps.signal.subscribe(({ msg, rows, versionstamp, staged }) => {
    const byDomain = new Map<string, RecipientRow[]>();
    for (const row of rows) byDomain.set(row.domain, [...(byDomain.get(row.domain) ?? []), row]);
    for (const [domain, domainRows] of byDomain) {
      const actor = ensure(domain);
      if (!actor) continue;
      // Staged due entries carry an earlier versionstamp: let the actor find them in KV.
      if (staged) {
        actor.wake();
        continue;
      }
      const idxs = domainRows.map((r) => r.idx);
      actor.offer({
        due: {
          key: keys.due(domain, msg.createdAt, msg.id, 0),
          versionstamp,
          domain,
          dueAt: msg.createdAt,
          msgId: msg.id,
          rcpts: idxs,
        },
        msg,
        rows: domainRows,
      });
    }
  });

  async function scan() {
    try {
      for (const entry of await listQueuedDestinations(deps.kv)) {
        ensure(entry.key[1] as string);
      }
    } catch (err) {
      deps.log.error("worker.scan_failed", { err });
    }
  }

  scan();
  const timer = setInterval(scan, deps.pollIntervalMs);

  return {
    actors,
    async stop(graceMs: number) {
      stopped = true;
      clearInterval(timer);
      unsubscribe();
      await Promise.race([
        Promise.all([...actors.values()].map((a) => a.stop())),
        new Promise((r) => setTimeout(r, graceMs)),
      ]);
    },
  };
}
