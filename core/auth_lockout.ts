/**
 * Failed-login lockouts that hold across the nodes sharing a store. This node's own counts
 * (core/policy/auth_failures.ts) decide at once and set the reply delay; every failure is also
 * counted in the store (a sliding window of the lockout's length), and the failure that brings
 * a client address or username to the limit there writes a lock every node reads before it
 * checks a secret. So a guesser spreading attempts over several nodes is locked after `limit`
 * failures in all, not `limit` per node.
 *
 * @module
 */
import {
  type AuthFailureOptions,
  AuthFailures,
  type AuthLock,
  usernameKey,
} from "./policy/auth_failures.ts";
import { slidingCount } from "./policy/sliding_window.ts";
import {
  clearWindows,
  countedWindows,
  countInWindow,
  readWindows,
  type WindowedCounter,
} from "./store/window_counts.ts";
import { readAuthLocksWith, writeAuthLock } from "./store/auth_locks.ts";

/** What an attempt's lock check read. */
export interface LockCheck {
  lock: AuthLock;
  /**
   * The username had no failures counted in the store when the locks were read, so a success
   * has none to clear. A failure counted after that read came after the success, as it would
   * were it counted just after clearWindows' delete.
   */
  nothingToClear: boolean;
  /** The entries of the keys the caller asked to be read along (empty: not read). */
  also: Deno.KvEntryMaybe<unknown>[];
}

export interface AuthLockoutOptions extends AuthFailureOptions {
  /** The shared store; null keeps the counts on this node only. */
  kv: Deno.Kv | null;
  /** Whose failures these are ("smtp", "http"): each door counts its own. */
  scope: string;
  /** The store could not be asked: the local counts still hold. */
  onStoreError?: (err: unknown) => void;
}

export class AuthLockout {
  #local: AuthFailures;
  #options: AuthLockoutOptions;

  constructor(options: AuthLockoutOptions) {
    this.#options = options;
    this.#local = new AuthFailures(options);
  }

  #keys(client: string, username: string): [AuthLock & string, string][] {
    const out: [AuthLock & string, string][] = [["client", client]];
    if (username !== "") out.push(["username", usernameKey(username)]);
    return out;
  }

  #shared(): boolean {
    return this.#options.kv !== null && this.#options.limit > 0;
  }

  #usernameCounter(username: string): WindowedCounter {
    const { scope, coolDownMs } = this.#options;
    return { scope, id: `username:${usernameKey(username)}`, windowMs: coolDownMs };
  }

  /** Whether an attempt by `client` for `username` must be refused unheard. */
  async locked(client: string, username: string): Promise<AuthLock> {
    return (await this.check(client, username)).lock;
  }

  /**
   * locked(), with what the read found for succeed(), and the entries of `also` read in the same
   * store read (a login's credential): one read per login where there were three.
   */
  async check(client: string, username: string, also: Deno.KvKey[] = []): Promise<LockCheck> {
    const local = this.#local.locked(client, username);
    if (local !== null || !this.#shared()) {
      return { lock: local, nothingToClear: !this.#shared(), also: [] };
    }
    const now = this.#options.now();
    const windows = username === "" ? [] : countedWindows(this.#usernameCounter(username), now);
    try {
      const read = await readAuthLocksWith(
        this.#options.kv!,
        this.#options.scope,
        this.#keys(client, username),
        now,
        [...windows, ...also],
      );
      return {
        lock: read.lock as AuthLock,
        nothingToClear: read.also.slice(0, windows.length).every((e) => e.versionstamp === null),
        also: read.also.slice(windows.length),
      };
    } catch (err) {
      this.#options.onStoreError?.(err);
      return { lock: null, nothingToClear: false, also: [] };
    }
  }

  /**
   * Records a failure here and in the store; resolves with how long its reply should wait
   * (counted from when the attempt began) once the store has counted it, so the next attempt,
   * on any node, sees it.
   */
  async fail(client: string, username: string): Promise<number> {
    const delay = this.#local.fail(client, username);
    if (!this.#shared()) return delay;
    const { kv, scope, coolDownMs, limit, now } = this.#options;
    try {
      for (const [kind, key] of this.#keys(client, username)) {
        const at = now();
        const counter = { scope, id: `${kind}:${key}`, windowMs: coolDownMs };
        await countInWindow(kv!, counter, at);
        const failures = slidingCount(await readWindows(kv!, counter, at), at, coolDownMs);
        if (failures >= limit) {
          // The lock now holds the state: once it ends, counting starts afresh, as it does here.
          await writeAuthLock(kv!, scope, kind, key, at + coolDownMs, at);
          await clearWindows(kv!, counter, at);
        }
      }
    } catch (err) {
      this.#options.onStoreError?.(err);
    }
    return delay;
  }

  /**
   * A success clears the username's failures (its owner knows the secret), not the client's;
   * `seen`, this attempt's check(), spares the store a read when it found none.
   */
  succeed(username: string, seen?: LockCheck): void {
    this.#local.succeed(username);
    if (!this.#shared() || username === "" || seen?.nothingToClear) return;
    const { kv, now } = this.#options;
    clearWindows(kv!, this.#usernameCounter(username), now())
      .catch((err) => this.#options.onStoreError?.(err));
  }
}
