/**
 * Which site each recipient domain belongs to, cached in memory so the hot path (intake hands a
 * message to its site actor) needs no DNS and no KV read. Due entries stay filed per domain:
 * intake never resolves anything, and a domain that moves to other MX hosts simply joins
 * another site at its next lookup.
 */
import { profileFor, type Shaping, type SiteProfile } from "../core/config/shaping.ts";
import type { Destination } from "./routing.ts";
import { type TlsLevel, tlsLevelFor } from "../core/policy/tls_level.ts";

export interface SiteInfo {
  domain: string;
  site: string;
  destination: Destination;
  profile: SiteProfile;
  /** The site demands TLS (its profile or its route). */
  requireTls: boolean;
  /** The outbound TLS level of the site's connections (profile and route). */
  tlsLevel: TlsLevel;
  until: number;
}

export interface SiteDirectoryOptions {
  resolve(domain: string): Promise<Destination>;
  shaping: Shaping;
  now(): number;
  /** How long a resolved domain is trusted. @default 60000 */
  ttlMs?: number;
  /** How long a failed resolution is trusted. @default 10000 */
  failureTtlMs?: number;
}

const MAX_ENTRIES = 50_000;

export class SiteDirectory {
  #options: SiteDirectoryOptions;
  #cache = new Map<string, SiteInfo>();
  #pending = new Map<string, Promise<SiteInfo>>();

  constructor(options: SiteDirectoryOptions) {
    this.#options = options;
  }

  get shaping(): Shaping {
    return this.#options.shaping;
  }

  /** The cached entry if still fresh. */
  cached(domain: string): SiteInfo | undefined {
    const info = this.#cache.get(domain);
    return info && info.until > this.#options.now() ? info : undefined;
  }

  /** The cached entry, fresh or not. */
  peek(domain: string): SiteInfo | undefined {
    return this.#cache.get(domain);
  }

  /** Resolves (once, however many callers ask at the same time) unless a fresh entry exists. */
  lookup(domain: string): Promise<SiteInfo> {
    const fresh = this.cached(domain);
    if (fresh) return Promise.resolve(fresh);
    let pending = this.#pending.get(domain);
    if (!pending) {
      pending = this.#resolve(domain).finally(() => this.#pending.delete(domain));
      this.#pending.set(domain, pending);
    }
    return pending;
  }

  async #resolve(domain: string): Promise<SiteInfo> {
    const { resolve, shaping, now } = this.#options;
    let destination: Destination;
    try {
      destination = await resolve(domain);
    } catch (err) {
      destination = {
        ok: false,
        site: domain,
        permanent: false,
        failure: "temporary",
        reason: String(err),
      };
    }
    const profile = destination.ok
      ? profileFor(shaping, destination.hostNames, destination.route !== undefined)
      : shaping.default;
    const info: SiteInfo = {
      domain,
      site: destination.site,
      destination,
      profile,
      requireTls: profile.requireTls || (destination.ok && destination.requireTls),
      tlsLevel: tlsLevelFor(profile, destination.ok ? destination.route : undefined),
      until: now() +
        (destination.ok ? this.#options.ttlMs ?? 60_000 : this.#options.failureTtlMs ?? 10_000),
    };
    if (this.#cache.size >= MAX_ENTRIES) this.#prune();
    this.#cache.set(domain, info);
    return info;
  }

  #prune() {
    const now = this.#options.now();
    for (const [domain, info] of this.#cache) if (info.until <= now) this.#cache.delete(domain);
    // Still full of fresh entries: drop the oldest half rather than grow without bound.
    if (this.#cache.size >= MAX_ENTRIES) {
      let n = Math.floor(this.#cache.size / 2);
      for (const domain of this.#cache.keys()) {
        if (n-- <= 0) break;
        this.#cache.delete(domain);
      }
    }
  }
}
