/**
 * The queue as operators see and steer it, per destination site. The http role needs live
 * actor state (connections, throttling, limits in force), but core/ and http/ never import
 * actors/: main.ts builds this object from the worker and hands it to the http app.
 *
 * @module
 */

export type SiteState = "active" | "throttled" | "suspended";

export interface SiteLimits {
  profile: string;
  connection_limit: number;
  max_deliveries_per_connection: number;
  max_message_rate: string | null;
  connect_timeout: string;
  idle_timeout: string;
  require_tls: boolean;
  backoff_cooldown: string;
}

export interface SiteView {
  /** The site key: sorted MX host names, or "route:<hosts>". */
  site: string;
  /** Recipient domains queued for this site. */
  domains: string[];
  /** Queued recipients (deferred and fresh); a lower bound when `depth_truncated`. */
  depth: number;
  depth_truncated: boolean;
  /** Seconds since the oldest queued message was accepted; null when none. */
  oldest_age_s: number | null;
  next_attempt_at: string | null;
  state: SiteState;
  /** The configured profile. */
  limits: SiteLimits;
  /** What applies now: the concurrency window and rate after any backoff. */
  in_force: { connection_limit: number; max_message_rate: string | null };
  throttled_until: string | null;
  connections: number;
  /** Hosts skipped after failing to connect, with when they are tried again. */
  hosts_down: { host: string; until: string }[];
  /** Whether this node holds the site's lease (works its queue). */
  leased_here: boolean;
}

export interface QueueControl {
  sites(): Promise<SiteView[]>;
  /** The site key for a site key or a recipient domain; null when neither is known. */
  resolve(siteOrDomain: string): Promise<string | null>;
  /** Tries every queued recipient of the site now, ignoring their retry times. */
  retry(site: string): Promise<void>;
  suspend(site: string): Promise<void>;
  resume(site: string): Promise<void>;
  /**
   * Removes every queued recipient of the site: each becomes `bounced` with an event; with
   * `dsn` the senders get a DSN. Resolves with how many recipients were removed.
   */
  purge(site: string, options: { dsn: boolean }): Promise<number>;
}
