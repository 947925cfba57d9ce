/**
 * Suppression lists, one per account: addresses that hard-bounced, that expired too many times in
 * a row, or that an operator added. Mail to them is not attempted; intake records it as
 * `suppressed` at once.
 *
 * Intake must not pay a KV read per recipient, so every node keeps the lists in memory. Each
 * change sums a generation counter in the same commit; a node re-reads the lists when the
 * counter moved (one KV read per poll), and applies its own changes at once.
 *
 * @module
 */
import { keys } from "./keys.ts";

export type SuppressionSource = "bounce" | "expiry" | "api" | "complaint";

export interface Suppression {
  /** Lower-cased address. */
  address: string;
  /** A bounce category (invalid_recipient, bad_domain, expired) or an operator's reason. */
  reason: string;
  source: SuppressionSource;
  createdAt: number;
  /** The message whose failure added it. */
  msgId?: string;
  /** The remote reply that added it. */
  reply?: string;
}

/** Suppression matches ignore case: receivers treat local parts case-insensitively in practice. */
export function normalizeAddress(address: string): string {
  return address.trim().toLowerCase();
}

/** Adds the mutations that suppress an address to a commit (one set, one counter sum). */
export function suppressOps(op: Deno.AtomicOperation, account: string, s: Suppression) {
  const address = normalizeAddress(s.address);
  op.set(keys.suppression(account, address), { ...s, address });
  op.sum(keys.suppressionGeneration(), 1n);
}

export async function addSuppression(kv: Deno.Kv, account: string, s: Suppression) {
  const op = kv.atomic();
  suppressOps(op, account, s);
  const res = await op.commit();
  if (!res.ok) throw new Error(`Cannot add suppression for ${s.address}: commit failed`);
}

export async function getSuppression(
  kv: Deno.Kv,
  account: string,
  address: string,
): Promise<Suppression | null> {
  return (await kv.get<Suppression>(keys.suppression(account, normalizeAddress(address)))).value;
}

/** Removes an address; false when it was not on the list. */
export async function removeSuppression(
  kv: Deno.Kv,
  account: string,
  address: string,
): Promise<boolean> {
  const key = keys.suppression(account, normalizeAddress(address));
  const entry = await kv.get(key);
  if (entry.value === null) return false;
  const res = await kv.atomic().check(entry).delete(key)
    .delete(keys.suppressionStreak(account, normalizeAddress(address)))
    .sum(keys.suppressionGeneration(), 1n).commit();
  return res.ok;
}

/** One page of an account's list in address order; `cursor` continues where a page ended. */
export async function listSuppressions(
  kv: Deno.Kv,
  account: string,
  options: { cursor?: string | undefined; limit: number },
): Promise<{ items: Suppression[]; cursor: string | null }> {
  const iter = kv.list<Suppression>(
    { prefix: keys.suppressionPrefix(account) },
    { limit: options.limit, ...(options.cursor ? { cursor: options.cursor } : {}) },
  );
  const items: Suppression[] = [];
  for await (const e of iter) items.push(e.value);
  return { items, cursor: items.length === options.limit && iter.cursor ? iter.cursor : null };
}

export interface Streak {
  count: number;
  lastAt: number;
}

/** Expiry streaks of some addresses of one account (bounce path only, never per delivery). */
export async function loadStreaks(
  kv: Deno.Kv,
  account: string,
  addresses: readonly string[],
): Promise<Map<string, Streak>> {
  const out = new Map<string, Streak>();
  const list = [...new Set(addresses.map(normalizeAddress))];
  for (let i = 0; i < list.length; i += 10) {
    const batch = list.slice(i, i + 10);
    const entries = await kv.getMany<Streak[]>(
      batch.map((a) => keys.suppressionStreak(account, a)),
    );
    entries.forEach((e, j) => {
      if (e.value) out.set(batch[j]!, e.value);
    });
  }
  return out;
}

/** Sets an expiry streak; every node's cache learns of it, so their deliveries end it. */
export function setStreakOp(op: Deno.AtomicOperation, account: string, address: string, s: Streak) {
  op.set(keys.suppressionStreak(account, normalizeAddress(address)), s);
  op.sum(keys.suppressionGeneration(), 1n);
}

/**
 * A delivery ends a streak: a delete, no read. Only for an address the cache knows has one
 * ({@linkcode SuppressionCache.hasStreak}): a delete per delivery would be a mutation per message
 * for a key that almost never exists.
 */
export function clearStreakOp(op: Deno.AtomicOperation, account: string, address: string) {
  op.delete(keys.suppressionStreak(account, normalizeAddress(address)));
}

/** Every node's in-memory copy of all suppression lists. */
export class SuppressionCache {
  #kv: Deno.Kv;
  #lists = new Map<string, Map<string, string>>();
  /** Addresses with an expiry streak, by account: few, as an expiry is rare. */
  #streaks = new Map<string, Set<string>>();
  #generation = -1n;
  /**
   * Changes this node applied itself (remember, forget, rememberStreak): a reload that was
   * reading while one came may hold the store as it was before it, and must not undo it.
   */
  #localChanges = 0;

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The suppression reason for an address, or null when mail to it may go. */
  reasonFor(account: string, address: string): string | null {
    return this.#lists.get(account)?.get(normalizeAddress(address)) ?? null;
  }

  /** Applies a change this node just committed, before the next reload would show it. */
  remember(account: string, address: string, reason: string) {
    this.#localChanges++;
    let list = this.#lists.get(account);
    if (!list) this.#lists.set(account, list = new Map());
    list.set(normalizeAddress(address), reason);
  }

  forget(account: string, address: string) {
    this.#localChanges++;
    this.#lists.get(account)?.delete(normalizeAddress(address));
  }

  /**
   * Whether `address` has an expiry streak, as far as this node knows. A streak another node set
   * since this node's last refresh is missed: a delivery here in that window leaves it standing.
   */
  hasStreak(account: string, address: string): boolean {
    return this.#streaks.get(account)?.has(normalizeAddress(address)) ?? false;
  }

  /** Applies a streak change this node just committed (`on` false: the streak ended). */
  rememberStreak(account: string, address: string, on: boolean) {
    this.#localChanges++;
    let set = this.#streaks.get(account);
    if (!set) this.#streaks.set(account, set = new Set());
    if (on) set.add(normalizeAddress(address));
    else set.delete(normalizeAddress(address));
  }

  get size(): number {
    let n = 0;
    for (const list of this.#lists.values()) n += list.size;
    return n;
  }

  /** Re-reads every list if any node changed one since the last read. */
  async refresh(): Promise<void> {
    const changes = this.#localChanges;
    const gen = (await this.#kv.get<Deno.KvU64>(keys.suppressionGeneration())).value?.value ?? 0n;
    if (gen === this.#generation) return;
    // The counter is read first: a change made while we list shows up as a newer counter next time.
    const lists = new Map<string, Map<string, string>>();
    for await (const e of this.#kv.list<Suppression>({ prefix: keys.suppressionPrefix() })) {
      const account = e.key[1] as string;
      let list = lists.get(account);
      if (!list) lists.set(account, list = new Map());
      list.set(e.value.address, e.value.reason);
    }
    const streaks = new Map<string, Set<string>>();
    for await (const e of this.#kv.list({ prefix: keys.suppressionStreakPrefix() })) {
      const [, account, address] = e.key as [string, string, string];
      let set = streaks.get(account);
      if (!set) streaks.set(account, set = new Set());
      set.add(address);
    }
    // A change of this node's own committed while we read (a suppression deleted through the
    // API, say) may be missing from what we read: keep what we have, and read again next time
    // (its commit moved the counter past `gen`).
    if (this.#localChanges !== changes) return;
    this.#lists = lists;
    this.#streaks = streaks;
    this.#generation = gen;
  }

  /** Refreshes every `intervalMs` until stopped. */
  start(intervalMs: number, onError: (err: unknown) => void): () => void {
    const timer = setInterval(() => this.refresh().catch(onError), intervalMs);
    return () => clearInterval(timer);
  }
}
