/** A site as the queue API shows it: its queue depth over its domains and its shaping state. */
import { dueStats, getSiteControl } from "../../core/store/sites.ts";
import { formatRate, profileView } from "../../core/config/shaping.ts";
import type { SiteView } from "../../core/queue_control.ts";
import { idTime } from "../../core/ids.ts";
import { QUEUE_VIEW_LIMIT } from "../../core/policy/actor_tuning.ts";
import type { SiteState } from "./state.ts";

/**
 * The view of a site's live state. What can change while the store is read (the flags, the
 * shaping) is read last; a domain adopted meanwhile is counted too. Suspension is read from the
 * store, which holds it: an actor that has not yet had its first turn (just after a restart, or
 * while another node holds the lease) has not loaded it.
 */
export async function viewSite(
  deps: { kv: Deno.Kv; now(): number },
  v: SiteState,
): Promise<SiteView> {
  const { kv, now } = deps;
  let depth = 0;
  let truncated = false;
  let oldest: string | null = null;
  let next: number | null = null;
  for (const domain of v.domains.keys()) {
    const s = await dueStats(kv, domain, QUEUE_VIEW_LIMIT);
    depth += s.recipients;
    truncated ||= s.truncated;
    if (s.oldestMsgId && (oldest === null || s.oldestMsgId < oldest)) oldest = s.oldestMsgId;
    if (s.nextDueAt !== null && (next === null || s.nextDueAt < next)) next = s.nextDueAt;
  }
  const suspended = (await getSiteControl(kv, v.site))?.suspended ?? false;
  const t = now();
  const cooling = t < v.shaping.window.cooldownUntil;
  const rate = v.shaping.rateInForce();
  return {
    site: v.site,
    domains: [...v.domains.keys()].sort(),
    depth,
    depth_truncated: truncated,
    oldest_age_s: oldest ? Math.max(0, Math.round((t - (idTime(oldest) ?? t)) / 1000)) : null,
    next_attempt_at: next === null ? null : new Date(next).toISOString(),
    state: suspended ? "suspended" : cooling ? "throttled" : "active",
    limits: profileView(v.shaping.profile),
    in_force: {
      connection_limit: v.shaping.window.limit,
      max_message_rate: formatRate(rate),
    },
    throttled_until: cooling ? new Date(v.shaping.window.cooldownUntil).toISOString() : null,
    connections: v.shaping.window.current,
    hosts_down: v.hostsDown.view(t),
    leased_here: v.lease.held,
  };
}
