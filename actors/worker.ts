/**
 * The worker role: one site actor for every destination site with queued work, idle ones let
 * go. It hears about new mail from intake in-process (QueueSignal) and hands it to the site's
 * actor in memory: the domain → site lookup is a cached map (actors/site_directory.ts), so the
 * hot path reads neither DNS nor KV. For work queued by other nodes, retries that came due and
 * recovery after a restart, it re-reads the queue markers. It also sends DSNs a crash left owed.
 */
import { SiteActor, type SiteActorDeps } from "./site/actor.ts";
import { SiteDirectory, type SiteInfo } from "./site_directory.ts";
import type { QueueSignal } from "../core/queue_signal.ts";
import { type DueEntry, listQueuedDestinations } from "../core/store/queue.ts";
import { sweepPendingDsns } from "./bounces.ts";
import { DSN_SWEEP_EVERY } from "../core/policy/actor_tuning.ts";
import { every, stopAll, systemTimers } from "./actor_loop.ts";
import { keyId } from "./site/job.ts";

export interface Worker {
  stop(graceMs: number): Promise<void>;
  /** Live actors by site key. */
  readonly actors: ReadonlyMap<string, SiteActor>;
  readonly directory: SiteDirectory;
  /** The actor working a site, creating it (and adopting `domain`) if needed. */
  actorFor(info: SiteInfo): SiteActor | undefined;
  /**
   * Gives every domain with queued work (marked or not) to its site's actor, lookups awaited.
   * The poll does this too, but without waiting and, for unmarked domains, only now and then:
   * an operator's retry right after a restart named a site no actor worked yet, and was lost.
   */
  adoptQueued(): Promise<void>;
}

export type WorkerDeps = Omit<SiteActorDeps, "inflight"> & { signal: QueueSignal };

export function startWorker(deps: WorkerDeps): Worker {
  const { directory } = deps;
  const actors = new Map<string, SiteActor>();
  /** Which actor works each domain's due queue now. */
  const owners = new Map<string, SiteActor>();
  const inflight = new Set<string>();
  let stopped = false;

  function actorFor(info: SiteInfo): SiteActor | undefined {
    if (stopped) return undefined;
    let actor = actors.get(info.site);
    if (!actor) {
      actor = new SiteActor(info.site, info.profile, { ...deps, inflight }, (gone) => {
        if (actors.get(gone.site) === gone) actors.delete(gone.site);
        for (const [domain, owner] of owners) if (owner === gone) owners.delete(domain);
      });
      actors.set(info.site, actor);
    }
    return actor;
  }

  /** The actor for a domain, moving the domain when its site changed since the last lookup. */
  function route(domain: string, info: SiteInfo): SiteActor | undefined {
    const owner = owners.get(domain);
    if (owner && owner.site === info.site) return owner;
    const actor = actorFor(info);
    if (!actor) return undefined;
    owner?.release(domain);
    actor.adopt(domain);
    owners.set(domain, actor);
    return actor;
  }

  /**
   * Runs `fn` with the domain's actor: at once (`late` false) when the site is cached, else after
   * a lookup (`late` true).
   */
  function withActor(domain: string, fn: (actor: SiteActor, late: boolean) => void) {
    const fresh = directory.cached(domain);
    if (fresh) {
      const actor = route(domain, fresh);
      if (actor) fn(actor, false);
      return;
    }
    directory.lookup(domain).then((info) => {
      const actor = route(domain, info);
      if (actor) fn(actor, true);
    }, (err) => deps.log.error("worker.lookup_failed", { domain, err }));
  }

  const unsubscribe = deps.signal.subscribe(({ msg, rows, due, staged }) => {
    const rowAt = new Map(rows.map((r) => [r.idx, r]));
    const byDomain = new Map<string, DueEntry[]>();
    for (const entry of due) {
      // Counted until its first attempt ends (SiteState.release): intake's flow control.
      if (!stopped) deps.inFlow?.queued(keyId(entry.key), msg.size);
      byDomain.set(entry.domain, [...(byDomain.get(entry.domain) ?? []), entry]);
    }
    for (const [domain, entries] of byDomain) {
      withActor(domain, (actor, late) => {
        // A message written ahead of its commit: let the actor find its entries in KV. So does
        // a hand-over that waited for a lookup: a scan may have sent the entry meanwhile.
        if (staged || late) return actor.touch(domain, msg.createdAt);
        // Each offer names the entry the store wrote, with the versionstamp it wrote it at.
        for (const entry of entries) {
          actor.offer({ due: entry, msg, rows: entry.rcpts.map((idx) => rowAt.get(idx)!) });
        }
      });
    }
  });

  let polls = 0;
  async function scan() {
    try {
      for (const entry of await listQueuedDestinations(deps.kv)) {
        const domain = entry.key[1] as string;
        const touchedAt = (entry.value as { touchedAt?: number } | null)?.touchedAt ?? 0;
        withActor(domain, (actor) => actor.touch(domain, touchedAt));
      }
      if (polls++ % DSN_SWEEP_EVERY === 0) await sweepPendingDsns(deps.bounces);
    } catch (err) {
      deps.log.error("worker.scan_failed", { err });
    }
  }

  async function adoptQueued() {
    for (const entry of await listQueuedDestinations(deps.kv, { all: true })) {
      const domain = entry.key[1] as string;
      try {
        route(domain, directory.cached(domain) ?? await directory.lookup(domain));
      } catch (err) {
        deps.log.error("worker.lookup_failed", { domain, err });
      }
    }
  }

  const timers = deps.timers ?? systemTimers;
  const stopScanning = every(timers, deps.pollIntervalMs, scan);

  return {
    actors,
    directory,
    actorFor,
    adoptQueued,
    async stop(graceMs: number) {
      stopped = true;
      stopScanning();
      unsubscribe();
      await stopAll(timers, actors.values(), graceMs);
    },
  };
}
