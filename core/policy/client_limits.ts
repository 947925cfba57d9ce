/**
 * Per-client connection limits, as Postfix's anvil keeps them: how many sessions one client
 * address holds open (`smtpd_client_connection_count_limit`), how fast it opens new ones
 * (`smtpd_client_connection_rate_limit`), and how many sessions the listeners hold in all.
 *
 * Instead of exempting loopback and the trusted networks (Postfix exempts `$mynetworks` by
 * default), every address is counted: a runaway app on a trusted host must not starve the others.
 * The clock is injected; nothing here touches a socket.
 *
 * @module
 */
import { type GcraState, gcraTake } from "./gcra.ts";
import type { Rate } from "./duration.ts";

export interface ClientLimitOptions {
  /** Sessions one client address may hold open at once; 0 = no limit. */
  perClient: number;
  /** Sessions over all clients; 0 = no limit. */
  total: number;
  /** New sessions per client address, with the whole count allowed back to back; null = none. */
  rate: Rate | null;
  now: () => number;
  /** Rate states kept before idle ones are forgotten. @default 100000 */
  maxTracked?: number;
}

export type ConnectionVerdict =
  | { ok: true }
  | { ok: false; reason: "total" | "client_count" | "client_rate"; retryAfterMs: number };

export class ClientConnections {
  #options: ClientLimitOptions;
  #open = new Map<string, number>();
  #total = 0;
  #rates = new Map<string, GcraState>();

  constructor(options: ClientLimitOptions) {
    this.#options = options;
  }

  /** Sessions open now for `address`, or over all clients. */
  openFor(address?: string): number {
    return address === undefined ? this.#total : this.#open.get(address) ?? 0;
  }

  /** Asks to open a session for `address`; when allowed, it counts until {@linkcode close}. */
  open(address: string): ConnectionVerdict {
    const { perClient, total, rate } = this.#options;
    if (total > 0 && this.#total >= total) return { ok: false, reason: "total", retryAfterMs: 0 };
    const open = this.#open.get(address) ?? 0;
    if (perClient > 0 && open >= perClient) {
      return { ok: false, reason: "client_count", retryAfterMs: 0 };
    }
    if (rate !== null) {
      const now = this.#options.now();
      const result = gcraTake(this.#rates.get(address), rate, now, Math.max(1, rate.count));
      if (!result.allowed) {
        return { ok: false, reason: "client_rate", retryAfterMs: result.retryAfterMs };
      }
      this.#rates.delete(address); // re-inserted last, so the map stays in least-recent order
      this.#rates.set(address, result.state);
      this.#forgetIdle(now);
    }
    this.#open.set(address, open + 1);
    this.#total++;
    return { ok: true };
  }

  /** Ends a session that {@linkcode open} allowed. */
  close(address: string): void {
    const open = this.#open.get(address) ?? 0;
    if (open <= 0) return;
    if (open === 1) this.#open.delete(address);
    else this.#open.set(address, open - 1);
    this.#total--;
  }

  /** A client whose theoretical arrival time has passed has nothing left to remember. */
  #forgetIdle(now: number) {
    const max = this.#options.maxTracked ?? 100_000;
    if (this.#rates.size <= max) return;
    for (const [address, state] of this.#rates) {
      if (this.#rates.size <= max && state.tat > now) break;
      this.#rates.delete(address); // idle, or the oldest while over the cap
    }
  }
}
