/**
 * The source address each connection to one site goes out from, applying
 * core/policy/source_pick.ts: the message's pool (its `X-Postern-Pool` header, its credential's
 * pool, else `default`), weights, warm-up caps counted per site and UTC day, and sources this
 * site recently blocked or rate-limited, tried last here (and only here).
 */
import type { Pools, PoolSource } from "../../core/config/pools.ts";
import { DEFAULT_POOL } from "../../core/config/pools.ts";
import { pickSource, utcDay, warmupCap } from "../../core/policy/source_pick.ts";
import { readWarmupCount } from "../../core/store/sites.ts";
import type { MessageRecord, RecipientRow } from "../../core/model.ts";
import type { CredentialSettingsCache } from "../credential_settings.ts";

/** A connection's source; no address: the system picks one and EHLO is our host name. */
export interface Source {
  address?: string;
  ehlo: string;
  /** Counts toward a warm-up plan at this site. */
  warming: boolean;
}

export interface SourceChooserDeps {
  kv: Deno.Kv;
  hostname: string;
  pools: Pools;
  credentials: CredentialSettingsCache;
  now(): number;
  random?: (() => number) | undefined;
}

export class SourceChooser {
  #site: string;
  #deps: SourceChooserDeps;
  /** Sources this site blocked or rate-limited, until when. */
  #penalties = new Map<string, number>();
  /** Today's sends from warming sources at this site (read once a day, then kept here). */
  #warmup = new Map<string, { day: number; count: number }>();

  constructor(site: string, deps: SourceChooserDeps) {
    this.#site = site;
    this.#deps = deps;
  }

  /** The site pushed back against `address`: try it last here until `until`. */
  deprioritise(address: string, until: number) {
    this.#penalties.set(address, until);
  }

  /**
   * The source for a message: a greylisted recipient's retry keeps the address it was
   * greylisted from; a connection keeps its source (`current`) while that still may send; else
   * a weighted pick. The choice is counted against its warm-up cap at once, so parallel
   * connections cannot overshoot it; `release` gives it back if no connection came of it.
   * Returns null when every source of the pool has used up today's cap at this site.
   */
  async choose(
    msg: MessageRecord,
    rows: readonly RecipientRow[],
    current: Source | null,
  ): Promise<Source | null> {
    const pool = await this.#poolFor(msg);
    if (!pool) return { ehlo: this.#deps.hostname, warming: false };
    const now = this.#deps.now();
    const day = utcDay(now);
    const toSource = (s: PoolSource): Source => ({
      address: s.address,
      ehlo: s.ehlo,
      warming: !!s.warmup && warmupCap(s.warmup, now) !== null,
    });
    const reserve = (s: Source) => {
      if (s.warming) this.#warmup.get(s.address!)!.count++;
      return s;
    };
    const remaining = async (s: PoolSource): Promise<number | null> => {
      const cap = s.warmup ? warmupCap(s.warmup, now) : null;
      return cap === null ? null : cap - await this.#used(s.address, day);
    };
    const pinned = rows.find((r) => r.lastCategory === "greylisted" && r.lastSource)?.lastSource;
    const pin = pinned ? pool.sources.find((s) => s.address === pinned) : undefined;
    if (pin) {
      await remaining(pin);
      return reserve(toSource(pin));
    }
    if (current?.address) {
      const s = pool.sources.find((c) => c.address === current.address);
      const left = s ? await remaining(s) : 0;
      if (s && (left === null || left > 0) && (this.#penalties.get(s.address) ?? 0) <= now) {
        return reserve(toSource(s));
      }
    }
    const candidates = [];
    for (const s of pool.sources) {
      candidates.push({
        address: s.address,
        weight: s.weight,
        remaining: await remaining(s),
        deprioritisedUntil: this.#penalties.get(s.address) ?? 0,
      });
    }
    const address = pickSource(candidates, now, this.#deps.random);
    if (address === null) return null;
    return reserve(toSource(pool.sources.find((s) => s.address === address)!));
  }

  /** Gives back a warm-up count taken by `choose` for a connection that did not open. */
  release(s: Source) {
    if (!s.warming) return;
    const w = this.#warmup.get(s.address!);
    if (w && w.count > 0) w.count--;
  }

  async #poolFor(msg: MessageRecord): Promise<{ name: string; sources: PoolSource[] } | null> {
    const { pools, credentials } = this.#deps;
    if (Object.keys(pools).length === 0) return null;
    const named = msg.pool && pools[msg.pool] ? msg.pool : null;
    const fromCredential = named ? null : (await credentials.get(msg.credentialId)).pool;
    const name = named ??
      (fromCredential && pools[fromCredential] ? fromCredential : null) ??
      (pools[DEFAULT_POOL] ? DEFAULT_POOL : null);
    return name ? { name, sources: pools[name]!.sources } : null;
  }

  async #used(address: string, day: number): Promise<number> {
    const known = this.#warmup.get(address);
    if (known && known.day === day) return known.count;
    const count = await readWarmupCount(this.#deps.kv, address, this.#site, day);
    const again = this.#warmup.get(address);
    if (again && again.day === day) return again.count; // another connection read it meanwhile
    this.#warmup.set(address, { day, count });
    return count;
  }
}
