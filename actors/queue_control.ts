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

  return {
    async sites(): Promise<SiteView[]> {
      const views = await Promise.all([...worker.actors.values()].map((a) => a.view()));
      return views.sort((a, b) => b.depth - a.depth || a.site.localeCompare(b.site));
    },

    async resolve(siteOrDomain) {
      const key = siteOrDomain.trim().toLowerCase();
      if (worker.actors.has(key)) return key;
      for (const actor of worker.actors.values()) {
        if (actor.domains.includes(key)) return actor.site;
      }
      if (!/^[a-z0-9.-]+\.[a-z0-9-]+$/.test(key)) return null;
      const info = await worker.directory.lookup(key);
      return info.destination.ok ? info.site : null;
    },

    retry(site) {
      actorOf(site)?.retryNow();
      return Promise.resolve();
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
