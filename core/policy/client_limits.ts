/**
 * Per-client connection limits, as Postfix's anvil keeps them: how many sessions one client
 * address holds open (`smtpd_client_connection_count_limit`), how fast it opens new ones
 * (`smtpd_client_connection_rate_limit`), and how many sessions the listeners hold in all.
 *
 * Trusted networks are counted too, against a limit of their own: Postfix exempts `$mynetworks`
 * outright, which lets one trusted host run a whole load (a bench, an app server's pool), but a
 * runaway app on a trusted host must still not starve the others, so its limit is higher, not gone.
 * The clock is injected; nothing here touches a socket.
 *
 * @module
 */
import { type GcraState, gcraTake } from "./gcra.ts";
import type { Rate } from "./duration.ts";

export interface ClientLimitOptions {
  /** Sessions one client address may hold open at once; 0 = no limit. */
  perClient: number;
  /** Sessions one trusted client address may hold open at once instead; 0 = no limit. */
  trustedPerClient?: number;
  /** Whether an address is in the trusted networks; none are without it. */
  isTrusted?: (address: string) => boolean;
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
    const { total, rate } = this.#options;
    if (total > 0 && this.#total >= total) return { ok: false, reason: "total", retryAfterMs: 0 };
    const open = this.#open.get(address) ?? 0;
    const perClient = this.#perClientFor(address);
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

  #perClientFor(address: string): number {
    const { perClient, trustedPerClient, isTrusted } = this.#options;
    return trustedPerClient !== undefined && isTrusted?.(address) ? trustedPerClient : perClient;
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
