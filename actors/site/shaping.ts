/**
 * A site's shaping state, applying policy from core/policy: the concurrency window (grows on
 * success, halves on throttling), the message rate (GCRA) and the backoff that slows both for a
 * cool-down after the site pushes back.
 */
import type { RecipientResult } from "../../core/store/deliveries.ts";
import type { Logger } from "../../core/log.ts";
import { formatRate, type SiteProfile } from "../../core/config/shaping.ts";
import {
  initialWindow,
  onSuccess,
  onThrottle,
  release,
  tryAcquire,
  type Window,
} from "../../core/policy/concurrency_window.ts";
import { type GcraState, gcraTake } from "../../core/policy/gcra.ts";
import type { Rate } from "../../core/policy/duration.ts";
import { backoffRate, feedbackOf } from "../../core/policy/site_feedback.ts";
import type { SourceChooser } from "./source_chooser.ts";
import { sleep, type Timers } from "../actor_loop.ts";

export interface SiteShapingDeps {
  log: Logger;
  sources: SourceChooser;
  now(): number;
  timers: Timers;
}

export class SiteShaping {
  readonly site: string;
  #deps: SiteShapingDeps;
  #profile: SiteProfile;
  #window: Window;
  #rate: GcraState | undefined;
  /** A backoff began and has not yet been reported as over. */
  #throttled = false;

  constructor(site: string, profile: SiteProfile, deps: SiteShapingDeps) {
    this.site = site;
    this.#deps = deps;
    this.#profile = profile;
    this.#window = initialWindow(profile.connectionLimit);
  }

  get profile(): SiteProfile {
    return this.#profile;
  }

  get window(): Window {
    return this.#window;
  }

  setProfile(profile: SiteProfile) {
    if (profile === this.#profile) return;
    this.#profile = profile;
    if (this.#window.limit > profile.connectionLimit) {
      this.#window = { ...this.#window, limit: profile.connectionLimit };
    }
  }

  /** Takes one connection slot of the window; false when it is full. */
  acquire(): boolean {
    const taken = tryAcquire(this.#window);
    if (!taken) return false;
    this.#window = taken;
    return true;
  }

  /** Gives back a connection slot. */
  release() {
    this.#window = release(this.#window);
  }

  /** The message rate in force: the profile's, or the backoff rate while cooling down. */
  rateInForce(): Rate | null {
    const base = this.#profile.maxMessageRate;
    if (this.#deps.now() >= this.#window.cooldownUntil) return base;
    return backoffRate(base, this.#profile.backoffMessageRate);
  }

  /** Waits until the site's rate lets one more message go (or the actor is stopping). */
  async pace(stopping: () => boolean) {
    for (;;) {
      const rate = this.rateInForce();
      if (!rate || stopping()) return;
      const r = gcraTake(this.#rate, rate, this.#deps.now());
      this.#rate = r.state;
      if (r.allowed) return;
      await sleep(this.#deps.timers, Math.min(r.retryAfterMs, 1_000));
    }
  }

  /** A throttling reply: halve the window (once per cooldown), slow the rate, note the source. */
  noteThrottle(address: string | undefined) {
    const now = this.#deps.now();
    const before = this.#window;
    this.#window = onThrottle(before, now, this.#profile.backoffCooldownMs);
    if (address) this.#deps.sources.deprioritise(address, now + this.#profile.backoffCooldownMs);
    if (now >= before.cooldownUntil) {
      this.#throttled = true;
      this.#deps.log.warn("site.throttled", {
        site: this.site,
        connection_limit: this.#window.limit,
        rate: formatRate(this.rateInForce()),
        until: new Date(this.#window.cooldownUntil).toISOString(),
        source: address ?? null,
      });
    }
  }

  noteRecovery() {
    if (this.#throttled && this.#deps.now() >= this.#window.cooldownUntil) {
      this.#throttled = false;
      this.#deps.log.info("site.recovered", {
        site: this.site,
        connection_limit: this.#window.limit,
        rate: formatRate(this.rateInForce()),
      });
    }
  }

  /** Shaping learns from replies: success grows the window, push-back shrinks it. */
  learn(results: readonly RecipientResult[], source: string | undefined) {
    const now = this.#deps.now();
    const feedback = feedbackOf(results);
    if (feedback.throttled) {
      this.noteThrottle(source);
    } else if (feedback.succeeded) {
      this.#window = onSuccess(this.#window, this.#profile.connectionLimit, now);
    }
    // A source the site blocks is tried last at this site (and only here) for a while.
    if (source && feedback.sourceBlocked) {
      this.#deps.sources.deprioritise(source, now + this.#profile.backoffCooldownMs);
      this.#deps.log.info("site.source_deprioritised", { site: this.site, source });
    }
  }
}
