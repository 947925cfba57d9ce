/**
 * Failed authentications, counted per client address and per username, as fail2ban and
 * Dovecot's `auth_failure_delay` do for IMAP: each failure is answered more slowly than the last,
 * and after `limit` failures within `coolDownMs` the key is locked until `coolDownMs` after its
 * last failure. Attempts made while locked are refused without checking the secret, so they
 * neither count nor tell a right password from a wrong one.
 *
 * Counting per username stops a botnet spreading guesses for one account over many addresses;
 * counting per address stops one client trying many accounts. The price, paid by every MTA that
 * locks accounts, is that an attacker can lock a known username for `coolDownMs`; the delay and
 * lockout kept here are per node and forgotten on restart; core/auth_lockout.ts adds the counts
 * and locks shared by every node on the store.
 *
 * @module
 */

export interface AuthFailureOptions {
  /** Failures within `coolDownMs` that lock the key; 0 = never lock. */
  limit: number;
  /** How long a lock lasts after the last failure, and how long a failure is remembered. */
  coolDownMs: number;
  /** The reply to the n-th recent failure waits n × this (at most `limit` × this). */
  delayMs: number;
  now: () => number;
  /** Keys remembered per kind before the oldest are forgotten. @default 100000 */
  maxTracked?: number;
}

interface FailureState {
  failures: number;
  lastAt: number;
}

/** Which key is locked: the client address (the session is closed) or the username. */
export type AuthLock = "client" | "username" | null;

export class AuthFailures {
  #options: AuthFailureOptions;
  #clients = new Map<string, FailureState>();
  #usernames = new Map<string, FailureState>();

  constructor(options: AuthFailureOptions) {
    this.#options = options;
  }

  /** Whether an attempt by `client` for `username` must be refused unheard. */
  locked(client: string, username: string): AuthLock {
    if (this.#isLocked(this.#clients, client)) return "client";
    if (username !== "" && this.#isLocked(this.#usernames, usernameKey(username))) {
      return "username";
    }
    return null;
  }

  /**
   * Records a failure; returns how long its reply should wait, counted from when the attempt
   * began. Unknown users and wrong passwords take this same path.
   */
  fail(client: string, username: string): number {
    const a = this.#record(this.#clients, client);
    const b = username === "" ? 0 : this.#record(this.#usernames, usernameKey(username));
    return this.delayFor(Math.max(a, b));
  }

  /** A success clears the username's failures (its owner knows the secret), not the client's. */
  succeed(username: string): void {
    this.#usernames.delete(usernameKey(username));
  }

  /** The wait before the reply to the `failures`-th recent failure. */
  delayFor(failures: number): number {
    const { delayMs, limit } = this.#options;
    const steps = limit > 0 ? Math.min(failures, limit) : Math.min(failures, 10);
    return Math.max(0, steps) * delayMs;
  }

  #isLocked(map: Map<string, FailureState>, key: string): boolean {
    const { limit, coolDownMs } = this.#options;
    if (limit <= 0) return false;
    const state = map.get(key);
    if (!state) return false;
    if (this.#options.now() - state.lastAt >= coolDownMs) {
      map.delete(key);
      return false;
    }
    return state.failures >= limit;
  }

  #record(map: Map<string, FailureState>, key: string): number {
    const now = this.#options.now();
    const old = map.get(key);
    const failures = old && now - old.lastAt < this.#options.coolDownMs ? old.failures + 1 : 1;
    map.delete(key); // re-inserted last: the map stays ordered by last failure
    map.set(key, { failures, lastAt: now });
    const max = this.#options.maxTracked ?? 100_000;
    for (const oldest of map.keys()) {
      if (map.size <= max) break;
      map.delete(oldest);
    }
    return failures;
  }
}

/** Usernames compare case-insensitively, and an absurdly long one is cut before it is stored. */
export function usernameKey(username: string): string {
  return username.trim().toLowerCase().slice(0, 256);
}
