/**
 * The queue API's view into the live site actors (core/queue_control.ts defines the interface,
 * main.ts wires this implementation to the http app). Suspensions are kept in KV, so they
 * outlast a restart and reach whichever node holds the site's lease.
 */
import type { QueueControl, SiteView } from "../core/queue_control.ts";
import { setSiteSuspended } from "../core/store/sites.ts";
import type { Worker } from "./worker.ts";

export function createQueueControl(
  worker: Worker,
  deps: { kv: Deno.Kv; now(): number },
): QueueControl {
  const actorOf = (site: string) => worker.actors.get(site);
  /** The live actor for a site key or domain, after adopting queued work none holds yet. */
  function find(key: string) {
    const actor = worker.actors.get(key);
    if (actor) return actor;
    for (const a of worker.actors.values()) if (a.domains.includes(key)) return a;
    return undefined;
  }

  return {
    async sites(): Promise<SiteView[]> {
      const views = await Promise.all([...worker.actors.values()].map((a) => a.view()));
      return views.sort((a, b) => b.depth - a.depth || a.site.localeCompare(b.site));
    },

    async resolve(siteOrDomain) {
      const key = siteOrDomain.trim().toLowerCase();
      // After a restart the poll may not have given a site's queued mail to an actor yet.
      const actor = find(key) ?? (await worker.adoptQueued(), find(key));
      if (actor) return actor.site;
      if (!/^[a-z0-9.-]+\.[a-z0-9-]+$/.test(key)) return null;
      const info = await worker.directory.lookup(key);
      return info.destination.ok ? info.site : null;
    },

    async retry(site) {
      // Named by a domain without queued mail, the site may have no actor yet: retry what the
      // store holds for it, so the request is never silently lost.
      if (!actorOf(site)) await worker.adoptQueued();
      actorOf(site)?.retryNow();
    },

    async suspend(site) {
      await setSiteSuspended(deps.kv, site, true, deps.now());
      actorOf(site)?.setSuspended(true);
    },

    async resume(site) {
      await setSiteSuspended(deps.kv, site, false, deps.now());
      actorOf(site)?.setSuspended(false);
    },

    async purge(site, options) {
      const actor = actorOf(site);
      return actor ? await actor.purge(options) : 0;
    },
  };
}
