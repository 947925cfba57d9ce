/**
 * A destination *site*: what several recipient domains share when the same servers receive
 * their mail. Queues and shaping are kept per site, not per domain, so every Google-hosted
 * domain shares Google's connection limits (KumoMTA's "MX rollup").
 *
 * @module
 */
import { createHash } from "node:crypto";

/** KV keys hold at most 2 KiB; a site key longer than this is shortened with a digest. */
const MAX_SITE_KEY = 400;

function bounded(key: string): string {
  if (key.length <= MAX_SITE_KEY) return key;
  const digest = createHash("sha256").update(key).digest("hex").slice(0, 16);
  return `${key.slice(0, MAX_SITE_KEY - 18)}#${digest}`;
}

/**
 * The site of a domain reached through MX: its MX host names, lower-cased, without duplicates,
 * sorted, joined by commas. Preferences do not count: two domains listing the same hosts in a
 * different order still reach the same servers.
 */
export function mxSiteKey(hostNames: readonly string[]): string {
  const names = [...new Set(hostNames.map((h) => h.toLowerCase().replace(/\.$/, "")))].sort();
  return bounded(names.join(","));
}

/** The site of a static route: its hosts in order (the order is the route's meaning). */
export function routeSiteKey(hosts: readonly { host: string; port: number }[]): string {
  return bounded(`route:${hosts.map((h) => `${h.host.toLowerCase()}:${h.port}`).join("|")}`);
}
