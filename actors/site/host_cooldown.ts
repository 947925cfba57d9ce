/**
 * Hosts of a site skipped for a while after a connection to them failed: instead of trying a dead
 * host once per queued message, the site defers to it until its cool-down ends.
 */
import type { ConnectFailure } from "../../delivery/outbound_session.ts";
import type { Target } from "../routing.ts";

export interface HostDown {
  until: number;
  reason: string;
}

export class HostCooldown {
  #down = new Map<string, HostDown>();

  /** Skips the host until `until`, remembering why. */
  markDown(target: Target, down: HostDown) {
    this.#down.set(hostKey(target), down);
  }

  get(target: Target): HostDown | undefined {
    return this.#down.get(hostKey(target));
  }

  isUp(target: Target, now: number): boolean {
    return (this.#down.get(hostKey(target))?.until ?? 0) <= now;
  }

  clear() {
    this.#down.clear();
  }

  /** Hosts still cooling down at `t`, as the queue API shows them. */
  view(t: number): { host: string; until: string }[] {
    return [...this.#down].filter(([, d]) => d.until > t).map(([host, d]) => ({
      host,
      until: new Date(d.until).toISOString(),
    }));
  }
}

function hostKey(t: Target | { host: string; port: number }): string {
  return `${t.host}:${t.port}`;
}

/** A connection failure as logged and kept as a host's cool-down reason. */
export function describe(target: Target, err: unknown): string {
  const e = err as ConnectFailure;
  const what = e.responseCode ? e.message : `${e.code ?? "ERROR"}: ${e.message}`;
  return `${target.name} [${target.host}]:${target.port}: ${what}`;
}
