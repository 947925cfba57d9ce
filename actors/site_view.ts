/** A site as the queue API shows it: its queue depth over its domains and its shaping state. */
import { dueStats } from "../core/store/sites.ts";
import { formatRate, profileView } from "../core/config/shaping.ts";
import type { SiteView } from "../core/queue_control.ts";
import type { HostCooldown } from "./host_cooldown.ts";
import type { SiteShaping } from "./site_shaping.ts";
import { idTime } from "./id_time.ts";

const STATS_LIMIT = 10_000;

/** What the view reads of its site actor; state that can change while it reads is read last. */
export interface SiteViewSource {
  site: string;
  deps: { kv: Deno.Kv; now(): number };
  /** The site's domains (the live map: one adopted while the view reads is counted too). */
  domains: Map<string, unknown>;
  shaping: SiteShaping;
  hostsDown: HostCooldown;
  suspended(): boolean;
  leased(): boolean;
}

export async function viewSite(v: SiteViewSource): Promise<SiteView> {
  const { kv, now } = v.deps;
  let depth = 0;
  let truncated = false;
  let oldest: string | null = null;
  let next: number | null = null;
  for (const domain of v.domains.keys()) {
    const s = await dueStats(kv, domain, STATS_LIMIT);
    depth += s.recipients;
    truncated ||= s.truncated;
    if (s.oldestMsgId && (oldest === null || s.oldestMsgId < oldest)) oldest = s.oldestMsgId;
    if (s.nextDueAt !== null && (next === null || s.nextDueAt < next)) next = s.nextDueAt;
  }
  const t = now();
  const cooling = t < v.shaping.window.cooldownUntil;
  const rate = v.shaping.rateInForce();
  return {
    site: v.site,
    domains: [...v.domains.keys()].sort(),
    depth,
    depth_truncated: truncated,
    oldest_age_s: oldest ? Math.max(0, Math.round((t - idTime(oldest)) / 1000)) : null,
    next_attempt_at: next === null ? null : new Date(next).toISOString(),
    state: v.suspended() ? "suspended" : cooling ? "throttled" : "active",
    limits: profileView(v.shaping.profile),
    in_force: {
      connection_limit: v.shaping.window.limit,
      max_message_rate: formatRate(rate),
    },
    throttled_until: cooling ? new Date(v.shaping.window.cooldownUntil).toISOString() : null,
    connections: v.shaping.window.current,
    hosts_down: v.hostsDown.view(t),
    leased_here: v.leased(),
  };
}
