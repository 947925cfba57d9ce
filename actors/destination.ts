/**
 * One actor per destination, alive while that destination has queued work. It holds the
 * destination's lease, takes due entries from KV, runs up to `connectionLimit` connections that
 * each carry up to `maxDeliveriesPerConnection` transactions, and records every attempt in one
 * commit. A due entry is in flight at most once: the in-process set guards this node, the lease
 * guards other nodes, and the versionstamp check in the outcome commit makes replays no-ops.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Committer } from "../core/store/committer.ts";
import {
  type DueEntry,
  isStaged,
  listDue,
  listRows,
  loadMessage,
  loadRows,
  nextDueAt,
} from "../core/store/queue.ts";
import { attemptChange, type RecipientResult } from "../core/store/deliveries.ts";
import { acquireLease, releaseLease } from "../core/store/leases.ts";
import { deleteBody, readBody } from "../core/store/bodies.ts";
import type { BodyCache } from "../core/store/body_cache.ts";
import { keys } from "../core/store/keys.ts";
import { FINAL_STATUSES, type MessageRecord, type RecipientRow } from "../core/model.ts";
import type { Logger } from "../core/log.ts";
import type { Destination, Target } from "./routing.ts";
import {
  ConnectFailure,
  OutboundSession,
  type RecipientOutcome,
  type SessionOptions,
} from "../delivery/outbound_session.ts";
import { decide, type RetryPolicy } from "./outcome.ts";

export interface DestinationDeps {
  kv: Deno.Kv;
  committer: Committer;
  bodyCache: BodyCache;
  log: Logger;
  nodeId: string;
  hostname: string;
  retry: RetryPolicy;
  connectionLimit: number;
  maxDeliveriesPerConnection: number;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  pollIntervalMs: number;
  resolveDestination(domain: string): Promise<Destination>;
  now(): number;
}

export interface Job {
  due: DueEntry;
  msg: MessageRecord;
  rows: RecipientRow[];
}

const LEASE_TTL_MS = 30_000;
const LIST_BATCH = 500;
const MAX_READY = 5_000;

export class DestinationActor {
  readonly domain: string;
  #deps: DestinationDeps;
  #ready: Job[] = [];
  #inflight = new Set<string>();
  #workers = 0;
  #stopping = false;
  #wakeUp: (() => void) | null = null;
  #done: Promise<void>;
  #leaseRenewedAt = 0;
  /** When to re-read the due index; 0 = now. */
  #scanAt = 0;
  /** The last scan filled a whole batch: more may be due. */
  #moreInKv = false;
  #resolved: { value: Destination; until: number } | null = null;
  /** Set when every host failed to connect: the rest of this round is deferred without trying. */
  #downUntil = 0;
  #downReason = "";

  constructor(domain: string, deps: DestinationDeps, onExit: () => void) {
    this.domain = domain;
    this.#deps = deps;
    this.#done = this.#run().catch((err) => {
      deps.log.error("actor.crashed", { domain, err });
    }).finally(onExit);
  }

  wake() {
    const w = this.#wakeUp;
    this.#wakeUp = null;
    w?.();
  }

  /** Stops taking work; in-flight transactions finish (bounded by the caller's grace). */
  stop(): Promise<void> {
    this.#stopping = true;
    this.#ready = [];
    this.wake();
    return this.#done;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.#wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async #holdLease(): Promise<boolean> {
    const { kv, nodeId, now } = this.#deps;
    if (now() - this.#leaseRenewedAt < LEASE_TTL_MS / 3) return true;
    const ok = await acquireLease(
      kv,
      keys.destinationLease(this.domain),
      nodeId,
      LEASE_TTL_MS,
      now(),
    );
    if (ok) this.#leaseRenewedAt = now();
    return ok;
  }

  /**
   * Fresh mail handed over in memory by intake: no KV reads on the hot path. Past the cap the
   * offer is dropped; the due entry is in KV and the next scan finds it.
   */
  offer(job: Job) {
    const id = keyId(job.due.key);
    if (this.#stopping || this.#inflight.has(id)) return;
    if (this.#ready.length >= MAX_READY) {
      this.#moreInKv = true;
      return;
    }
    this.#inflight.add(id);
    this.#ready.push(job);
    this.wake();
  }

  async #run() {
    const { kv, now } = this.#deps;
    while (!this.#stopping) {
      if (!(await this.#holdLease())) {
        await this.#sleep(LEASE_TTL_MS / 3);
        continue;
      }
      const lowOnWork = this.#ready.length < this.#deps.connectionLimit;
      if (this.#scanAt <= now() || (this.#moreInKv && lowOnWork)) {
        this.#scanAt = now() + this.#deps.pollIntervalMs;
        await this.#fill();
      }
      if (this.#ready.length > 0) this.#spawnWorkers();
      if (this.#workers > 0 || this.#ready.length > 0) {
        // Woken by an offer, a worker running low or leaving, or the next poll.
        await this.#sleep(this.#deps.pollIntervalMs);
        continue;
      }
      const next = await nextDueAt(kv, this.domain);
      if (next === null && this.#inflight.size === 0) {
        if (await this.#retire()) return;
        continue;
      }
      const wait = next === null ? this.#deps.pollIntervalMs : next - now();
      if (wait > 0) await this.#sleep(Math.min(wait, this.#deps.pollIntervalMs));
      this.#scanAt = 0;
    }
    while (this.#workers > 0) await sleep(20);
  }

  /** Moves due entries not already in flight into the ready list; returns how many. */
  async #fill(): Promise<number> {
    const { kv, now } = this.#deps;
    const entries = await listDue(kv, this.domain, now(), LIST_BATCH);
    this.#moreInKv = entries.length === LIST_BATCH;
    let added = 0;
    for (const due of entries) {
      const id = keyId(due.key);
      if (this.#inflight.has(id)) continue;
      const job = await this.#loadJob(due);
      if (!job) continue;
      this.#inflight.add(id);
      this.#ready.push(job);
      added++;
    }
    return added;
  }

  async #loadJob(due: DueEntry): Promise<Job | null> {
    const { kv } = this.#deps;
    const msg = await loadMessage(kv, due.msgId);
    if (!msg) {
      // Written ahead of a message commit that has not happened yet (or never will).
      if (!(await isStaged(kv, due.msgId))) {
        await kv.atomic().check({ key: due.key, versionstamp: due.versionstamp }).delete(due.key)
          .commit();
      }
      return null;
    }
    const rows = (await loadRows(kv, due.msgId, due.rcpts)).filter((r) =>
      !FINAL_STATUSES.has(r.status)
    );
    if (rows.length === 0) {
      await kv.atomic().check({ key: due.key, versionstamp: due.versionstamp }).delete(due.key)
        .commit();
      return null;
    }
    return { due, msg, rows };
  }

  #spawnWorkers() {
    while (this.#workers < this.#deps.connectionLimit && this.#workers < this.#ready.length) {
      this.#workers++;
      this.#connectionWorker().catch((err) => {
        this.#deps.log.error("actor.worker_failed", { domain: this.domain, err });
      }).finally(() => {
        this.#workers--;
        this.wake();
      });
    }
  }

  async #destination(): Promise<Destination> {
    const now = this.#deps.now();
    if (this.#resolved && this.#resolved.until > now) return this.#resolved.value;
    const value = await this.#deps.resolveDestination(this.domain);
    this.#resolved = { value, until: now + (value.ok ? 60_000 : 10_000) };
    return value;
  }

  /** One connection's life: open, carry transactions while there is work, close. */
  async #connectionWorker() {
    let session: OutboundSession | null = null;
    try {
      while (!this.#stopping) {
        const job = this.#ready.shift();
        if (!job) break;
        if (this.#ready.length < this.#deps.connectionLimit) this.wake(); // refill early
        try {
          if (
            session &&
            (!session.usable || session.deliveries >= this.#deps.maxDeliveriesPerConnection)
          ) {
            session.close();
            session = null;
          }
          if (session && session.deliveries > 0 && !(await session.reset())) {
            session.close();
            session = null;
          }
          if (!session) session = await this.#open(job);
          if (!session) continue; // #open recorded the outcome
          await this.#deliver(session, job);
        } finally {
          this.#inflight.delete(keyId(job.due.key));
        }
      }
    } finally {
      session?.close();
    }
  }

  async #open(job: Job): Promise<OutboundSession | null> {
    const { now, log } = this.#deps;
    const destination = await this.#destination();
    if (!destination.ok) {
      await this.#record(job, {
        kind: destination.permanent ? "permanent" : "transient",
        reply: destination.reason,
      });
      return null;
    }
    if (this.#downUntil > now()) {
      await this.#record(job, { kind: "transient", reply: this.#downReason });
      return null;
    }
    let lastError = "no hosts";
    for (const target of destination.targets) {
      try {
        const session = await OutboundSession.open(
          target,
          this.#sessionOptions(destination.requireTls),
        );
        log.debug("delivery.connected", {
          domain: this.domain,
          host: target.host,
          port: target.port,
        });
        return session;
      } catch (err) {
        lastError = describe(target, err);
        log.info("delivery.connect_failed", { domain: this.domain, error: lastError });
      }
    }
    // Every host failed: defer this round without hammering them once per queued message.
    this.#downUntil = now() + 5_000;
    this.#downReason = lastError;
    await this.#record(job, { kind: "transient", reply: lastError });
    return null;
  }

  #sessionOptions(requireTls: boolean): SessionOptions {
    return {
      heloName: this.#deps.hostname,
      connectTimeoutMs: this.#deps.connectTimeoutMs,
      commandTimeoutMs: this.#deps.commandTimeoutMs,
      requireTls,
    };
  }

  async #deliver(session: OutboundSession, job: Job) {
    const { kv, bodyCache, log } = this.#deps;
    const cached = bodyCache.get(job.msg.id);
    const body = cached ?? readBody(kv, job.msg.id, job.msg.chunks);
    const started = performance.now();
    const outcomes = await session.send(
      job.msg.mailFrom,
      job.rows.map((r) => r.rcpt),
      body,
      job.msg.size,
    );
    const byRcpt = new Map(outcomes.map((o) => [o.rcpt, o]));
    for (const row of job.rows) {
      const o = byRcpt.get(row.rcpt)!;
      log.info("delivery.attempt", {
        msg: job.msg.id,
        rcpt: row.rcpt,
        result: o.kind,
        reply: o.reply.slice(0, 300),
        host: session.info.remoteHost,
        tls: session.info.tls ?? null,
        ms: Math.round(performance.now() - started),
      });
    }
    await this.#recordAll(job, (row) => byRcpt.get(row.rcpt)!, session.info);
  }

  #record(job: Job, outcome: Pick<RecipientOutcome, "kind" | "reply">) {
    this.#deps.log.info("delivery.attempt", {
      msg: job.msg.id,
      rcpts: job.rows.length,
      result: outcome.kind,
      reply: outcome.reply.slice(0, 300),
    });
    return this.#recordAll(job, () => outcome, {});
  }

  async #recordAll(
    job: Job,
    outcomeOf: (row: RecipientRow) => Pick<RecipientOutcome, "kind" | "reply" | "code">,
    ctx: { remoteHost?: string; localAddress?: string; tls?: string },
  ) {
    const { committer, kv, bodyCache, now, retry } = this.#deps;
    const at = now();
    const results: RecipientResult[] = job.rows.map((row) =>
      decide(row, outcomeOf(row), retry, at)
    );
    const allFinalHere = results.every((r) => FINAL_STATUSES.has(r.status));
    // A message whose every recipient is now final no longer needs its body.
    const dropBodyNow = allFinalHere && job.rows.length === job.msg.recipients &&
      job.msg.chunks <= 40;
    const ok = await committer.commit(
      attemptChange(
        job.due,
        results,
        ctx,
        at,
        dropBodyNow
          ? (op) => {
            for (let i = 0; i < job.msg.chunks; i++) op.delete(keys.body(job.msg.id, i));
          }
          : undefined,
      ),
    );
    if (!ok) {
      this.#deps.log.warn("delivery.record_conflict", { msg: job.msg.id, domain: this.domain });
      return;
    }
    if (dropBodyNow) {
      bodyCache.delete(job.msg.id);
    } else if (allFinalHere) {
      const rows = await listRows(kv, job.msg.id);
      if (rows.every((r) => FINAL_STATUSES.has(r.status))) {
        bodyCache.delete(job.msg.id);
        await deleteBody(kv, job.msg.id, job.msg.chunks);
      }
    }
  }

  async #retire(): Promise<boolean> {
    const { kv, nodeId } = this.#deps;
    const marker = await kv.get(keys.queue(this.domain));
    if ((await nextDueAt(kv, this.domain)) !== null) return false;
    // Intake re-sets the marker when it queues new work, so this check makes the race safe.
    const res = await kv.atomic().check(marker).delete(keys.queue(this.domain)).commit();
    if (!res.ok) return false;
    await releaseLease(kv, keys.destinationLease(this.domain), nodeId);
    return true;
  }
}

function keyId(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

function describe(target: Target, err: unknown): string {
  const e = err as ConnectFailure;
  const what = e.responseCode ? e.message : `${e.code ?? "ERROR"}: ${e.message}`;
  return `${target.name} [${target.host}]:${target.port}: ${what}`;
}
