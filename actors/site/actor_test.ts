/**
 * A due entry goes out over SMTP at most once per attempt on one node, however the in-memory
 * offer (intake's hand-over) and the actor's KV scan interleave. KV reads are held at the points
 * where a busy machine delays them, so the interleavings are reproduced exactly, not hoped for.
 */
import assert from "node:assert/strict";
import { type Job, SiteActor, type SiteActorDeps } from "./actor.ts";
import { SiteDirectory } from "../site_directory.ts";
import { ConnectionCap } from "../connection_cap.ts";
import { startWorker } from "../worker.ts";
import { CredentialSettingsCache } from "../credential_settings.ts";
import { Committer } from "../../core/store/committer.ts";
import { BodyCache } from "../../core/store/body_cache.ts";
import { SuppressionCache } from "../../core/store/suppressions.ts";
import { keys } from "../../core/store/keys.ts";
import { rowOf } from "../../core/store/records.ts";
import { tryLease } from "../../core/store/leases.ts";
import { setSiteSuspended } from "../../core/store/sites.ts";
import { type QueuedMessage, QueueSignal } from "../../core/queue_signal.ts";
import { accept, type IntakeDeps } from "../../core/intake.ts";
import { resolveShaping, ShapingSchema } from "../../core/config/shaping.ts";
import { createLogger } from "../../core/log.ts";
import type { RecipientRow } from "../../core/model.ts";
import { startSink } from "../../tests/support/sink.ts";
import { FakeTimers } from "../../tests/support/fake_timers.ts";

const DOMAIN = "dest.test";
const GREYLISTED = { code: 451, message: "4.7.1 Greylisted, please try again in 2 seconds" };

/** A gate a KV read waits at, once armed: `reached` when a read arrives, `open()` lets it go. */
class Gate {
  reached: Promise<void>;
  #arrive!: () => void;
  #open!: () => void;
  #opened: Promise<void>;
  constructor() {
    this.reached = new Promise((r) => (this.#arrive = r));
    this.#opened = new Promise((r) => (this.#open = r));
  }
  /** Called by the read: its result is already taken from KV, it is only slow to come back. */
  async pass() {
    this.#arrive();
    await this.#opened;
  }
  open() {
    this.#open();
  }
}

/**
 * The store as the actor sees it, with two places a read can be held: the scan's listing of due
 * entries (`listDue`) and any read of one message's records (`loadFor`).
 */
function gatedKv(kv: Deno.Kv) {
  const gates: { listDue: Gate | null; load: { msgId: string; gate: Gate } | null } = {
    listDue: null,
    load: null,
  };
  const touches = (key: Deno.KvKey, msgId: string) =>
    (key[0] === "msg" || key[0] === "rcpt" || key[0] === "due") && key.includes(msgId);
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          const gate = gates.listDue;
          // Only the scan's read of what is due lists with an end bound.
          if (!gate || !("end" in selector) || selector.end[0] !== "due") {
            return target.list(selector, options);
          }
          gates.listDue = null;
          return (async function* () {
            const entries = [];
            for await (const e of target.list(selector, options)) entries.push(e);
            await gate.pass();
            yield* entries;
          })();
        };
      }
      if (prop === "get" || prop === "getMany") {
        return async (arg: Deno.KvKey | Deno.KvKey[], options?: { consistency?: string }) => {
          const load = gates.load;
          const keyList = (prop === "get" ? [arg] : arg) as Deno.KvKey[];
          // deno-lint-ignore no-explicit-any
          const result = await (target as any)[prop](arg, options);
          if (load && keyList.some((k) => touches(k, load.msgId))) {
            gates.load = null;
            await load.gate.pass();
          }
          return result;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    kv: proxy,
    /** Holds the next listing of due entries (after it read KV) until the gate opens. */
    holdListDue(): Gate {
      const gate = new Gate();
      gates.listDue = gate;
      return gate;
    },
    /** Holds the next read of `msgId`'s records (after it read KV) until the gate opens. */
    holdLoad(msgId: string): Gate {
      const gate = new Gate();
      gates.load = { msgId, gate };
      return gate;
    },
  };
}

/** Polls `check` until it holds; the deadline only turns a hang into a readable failure. */
async function until(check: () => boolean | Promise<boolean>, what: string) {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Cannot see ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function setUp() {
  const sink = await startSink({
    tls: "none",
    behaviors: { [`g@${DOMAIN}`]: { sequence: [GREYLISTED, "accept"] } },
  });
  const raw = await Deno.openKv(":memory:");
  const gated = gatedKv(raw);
  const kv = gated.kv;
  const committer = new Committer(kv);
  const bodyCache = new BodyCache();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ write: (line) => lines.push(JSON.parse(line)) });
  const signal = new QueueSignal();
  const queued: QueuedMessage[] = [];
  signal.subscribe((q) => queued.push(q));
  // Each message queued a millisecond after the one before: the scan lists them in that order.
  let lastQueuedAt = 0;
  const intake: IntakeDeps = {
    kv,
    committer,
    hostname: "relay.test",
    maxMessageSize: 1_000_000,
    bodyCache,
    signal,
    log,
    now: () => (lastQueuedAt = Math.max(Date.now(), lastQueuedAt + 1)),
  };
  // One connection, kept open between transactions: the interleavings below use it.
  const shaping = resolveShaping(
    ShapingSchema.parse({ default: { connection_limit: 1, idle_timeout: "1h" } }),
  );
  const target = { name: "127.0.0.1", host: "127.0.0.1", port: sink.port };
  // The directory's clock runs ahead when a test ages its entries; a lookup may be held.
  const lookups = { skewMs: 0, hold: null as Gate | null };
  const directory = new SiteDirectory({
    resolve: async () => {
      const hold = lookups.hold;
      lookups.hold = null;
      await hold?.pass();
      return {
        ok: true,
        site: "route:sink",
        hostNames: ["127.0.0.1"],
        targets: [target],
        requireTls: false,
      };
    },
    shaping,
    now: () => Date.now() + lookups.skewMs,
    ttlMs: 3_600_000,
  });
  const info = await directory.lookup(DOMAIN);
  const credentials = new CredentialSettingsCache(kv, Date.now);
  const inflight = new Set<string>();
  // The actor's waits (polls, lease retries, idle connections) run on time the test moves.
  const timers = new FakeTimers();
  const deps: SiteActorDeps = {
    kv,
    committer,
    bodyCache,
    log,
    nodeId: "node-a",
    hostname: "relay.test",
    retry: { schedule: [3_600_000], maxAgeMs: 86_400_000 },
    timeouts: {
      greetingMs: 30_000,
      commandMs: 30_000,
      mailMs: 30_000,
      rcptMs: 30_000,
      dataMs: 30_000,
      dataBlockMs: 30_000,
      dataDoneMs: 30_000,
    },
    connections: new ConnectionCap(100),
    pollIntervalMs: 3_600_000, // the actor reads KV only when told to
    directory,
    pools: {},
    credentials,
    bounces: {
      kv,
      intake,
      bodyCache,
      hostname: "relay.test",
      suppressAfterExpiries: 3,
      suppressions: new SuppressionCache(kv),
      credentials,
      log,
      now: Date.now,
    },
    inflight,
    now: Date.now,
    timers,
  };

  async function submit(to: string): Promise<QueuedMessage> {
    const res = await accept(intake, {
      account: "acct",
      credentialId: null,
      mailFrom: "app@origin.test",
      recipients: [to],
      clientAddress: "127.0.0.1",
      heloName: "client.test",
      protocol: "ESMTP",
      via: "smtp",
      body: (async function* () {
        yield new TextEncoder().encode(`From: app@origin.test\r\nTo: ${to}\r\n\r\nHello.\r\n`);
      })(),
    });
    assert.ok(res.ok, JSON.stringify(res));
    return queued.find((q) => q.msg.id === res.id)!;
  }

  /** The offer intake's signal makes (actors/worker.ts), for a one-recipient message. */
  function jobOf(q: QueuedMessage): Job {
    return { due: q.due[0]!, msg: q.msg, rows: q.rows };
  }

  /** The message's one row, read as the store's readers read it (its stored shape is compact). */
  async function row(msgId: string): Promise<RecipientRow> {
    const key = keys.recipient(msgId, 0);
    return rowOf(key, (await raw.get(key)).value);
  }

  /** The actor, with one idle connection open: a warm-up message went out through it. */
  async function startActor(): Promise<SiteActor> {
    const warm = await submit(`w@${DOMAIN}`);
    const actor = new SiteActor(info.site, info.profile, deps, () => {});
    actor.adopt(DOMAIN);
    await sink.waitFor(1);
    await until(async () => (await row(warm.msg.id)).status === "delivered", "the warm-up sent");
    await until(() => inflight.size === 0, "the warm-up finished");
    return actor;
  }

  return {
    sink,
    gated,
    lines,
    inflight,
    deps,
    timers,
    signal,
    directory,
    site: info.site,
    /** Ages the directory's entries out and holds its next lookup until the gate opens. */
    holdNextLookup(): Gate {
      lookups.skewMs += 2 * 3_600_000;
      lookups.hold = new Gate();
      return lookups.hold;
    },
    submit,
    jobOf,
    row,
    startActor,
    async close() {
      await sink.close();
      raw.close();
    },
  };
}

/** After the retry: two RCPTs (451, then 250), one message, no attempt recorded over another. */
async function assertSentOncePerAttempt(
  t: Awaited<ReturnType<typeof setUp>>,
  actor: SiteActor,
  msgId: string,
) {
  const deferred = await t.row(msgId);
  assert.equal(deferred.status, "deferred");
  assert.equal(deferred.lastCategory, "greylisted");
  actor.retryNow();
  // One connection takes the jobs in turn: anything sent in between went out before the retry.
  await until(async () => (await t.row(msgId)).status === "delivered", "the retry delivered");
  const tries = t.sink.rcpts.filter((r) => r.rcpt === `g@${DOMAIN}`).map((r) => r.code);
  assert.deepEqual(tries, [451, 250], "one greylisted try, one retry, none in between");
  assert.equal(t.sink.messages.filter((m) => m.to.includes(`g@${DOMAIN}`)).length, 1);
  const conflicts = t.lines.filter((l) => l.event === "delivery.record_conflict");
  assert.deepEqual(conflicts, [], "no attempt of an entry already attempted");
  assert.equal((await t.row(msgId)).attempts, 2);
}

Deno.test("a scan that listed an entry before its offered attempt finished does not send it again", async () => {
  const t = await setUp();
  const actor = await t.startActor();
  try {
    const q = await t.submit(`g@${DOMAIN}`);
    // The scan reads the due entry, and its answer is slow to come back...
    const listing = t.gated.holdListDue();
    actor.touch(DOMAIN, q.msg.createdAt);
    await listing.reached;
    // ...while the offer carries the same entry through a whole attempt: greylisted, recorded.
    actor.offer(t.jobOf(q));
    await until(async () => (await t.row(q.msg.id)).status === "deferred", "the attempt recorded");
    await until(() => t.inflight.size === 0, "the attempt finished");
    // The scan's answer now names an entry that no longer exists.
    listing.open();
    await assertSentOncePerAttempt(t, actor, q.msg.id);
  } finally {
    await actor.stop();
    await t.close();
  }
});

Deno.test("an offer that arrives while a scan loads the same entry is not sent twice", async () => {
  const t = await setUp();
  const actor = await t.startActor();
  try {
    const q = await t.submit(`g@${DOMAIN}`);
    // The scan lists the entry and starts loading its message; that read is slow...
    const loading = t.gated.holdLoad(q.msg.id);
    actor.touch(DOMAIN, q.msg.createdAt);
    await loading.reached;
    // ...and intake's offer of the same entry comes in meanwhile.
    actor.offer(t.jobOf(q));
    loading.open();
    await until(async () => (await t.row(q.msg.id)).status === "deferred", "the attempt recorded");
    await assertSentOncePerAttempt(t, actor, q.msg.id);
  } finally {
    await actor.stop();
    await t.close();
  }
});

Deno.test("a hand-over that waited for a lookup does not bring back an entry a scan sent meanwhile", async () => {
  const t = await setUp();
  const { inflight: _, ...workerDeps } = t.deps;
  const worker = startWorker({ ...workerDeps, signal: t.signal });
  try {
    const warm = await t.submit(`w@${DOMAIN}`);
    await until(async () => (await t.row(warm.msg.id)).status === "delivered", "the warm-up sent");
    // The domain's site is due for a fresh lookup, and that lookup is slow (DNS, say): intake's
    // hand-over of the next messages waits for it...
    const lookup = t.holdNextLookup();
    const q = await t.submit(`g@${DOMAIN}`);
    const after = await t.submit(`h@${DOMAIN}`);
    await lookup.reached;
    // ...while the site's actor finds them in KV and sends them: g greylisted, then h, over
    // its one connection, so g's attempt is over once h has arrived.
    const actor = worker.actors.get(t.site)!;
    actor.touch(DOMAIN, after.msg.createdAt);
    await t.sink.waitFor(2);
    assert.equal((await t.row(q.msg.id)).status, "deferred");
    // The lookup comes back: the hand-over is late.
    lookup.open();
    await t.directory.lookup(DOMAIN); // after the waiting hand-overs ran
    await assertSentOncePerAttempt(t, actor, q.msg.id);
    assert.equal(t.sink.messages.filter((m) => m.to.includes(`h@${DOMAIN}`)).length, 1);
  } finally {
    await worker.stop(5_000);
    await t.close();
  }
});

Deno.test("an actor whose lease another node took while it could not renew drops its ready jobs and sends none of them", async () => {
  const t = await setUp();
  // This node's clock, moved forward to play a node stalled past its lease.
  let stalledMs = 0;
  const deps: SiteActorDeps = {
    ...t.deps,
    now: () => Date.now() + stalledMs,
    leaseTtlMs: 3_000,
    // The stuck recipient's reply timeout ends its attempt well inside the test's deadlines.
    timeouts: { ...t.deps.timeouts, rcptMs: 5_000 },
  };
  const warm = await t.submit(`w@${DOMAIN}`);
  const actor = new SiteActor(t.site, t.directory.peek(DOMAIN)!.profile, deps, () => {});
  actor.adopt(DOMAIN);
  try {
    await until(async () => (await t.row(warm.msg.id)).status === "delivered", "the warm-up sent");
    // The one connection is stuck on a recipient whose server never answers...
    t.sink.setBehavior(`hang@${DOMAIN}`, "hang");
    actor.offer(t.jobOf(await t.submit(`hang@${DOMAIN}`)));
    await until(() => t.sink.attempts.has(`hang@${DOMAIN}`), "the stuck attempt under way");
    // ...so two more wait in the ready list.
    const waiting = [await t.submit(`q1@${DOMAIN}`), await t.submit(`q2@${DOMAIN}`)];
    for (const q of waiting) actor.offer(t.jobOf(q));
    // Past the lease's end without a renewal, another node takes the site. A turn of the actor
    // still running from the offers may renew on the moved clock first: then move it again.
    await until(async () => {
      stalledMs += 3_001;
      const at = deps.now();
      return (await tryLease(t.deps.kv, keys.siteLease(t.site), "node-b", 60_000, at)).ok;
    }, "the site taken by node-b");
    actor.wake();
    await until(() => t.lines.some((l) => l.event === "lease.lost"), "the loss noticed");
    // The stuck attempt ends (a timeout); nothing else leaves this node, however many turns
    // the actor's loop takes (each ends in a wait on the test's timers, here passed at once).
    await until(() => t.inflight.size === 0, "the stuck attempt over");
    for (let turn = 0; turn < 5; turn++) await t.timers.fireNext();
    for (const q of waiting) {
      assert.equal(t.sink.attempts.get(q.rows[0]!.rcpt), undefined, `${q.rows[0]!.rcpt} sent`);
      assert.equal((await t.row(q.msg.id)).status, "queued", "left in the store for node-b");
    }
    assert.equal(actor.leased, false);
  } finally {
    await actor.stop();
    await t.close();
  }
});

Deno.test("a suspension kept in the store shows in the site's view before the actor's first turn, as after a restart", async () => {
  const t = await setUp();
  // Another node holds the lease, so this actor never takes a turn that reads the suspension.
  const taken = await tryLease(t.deps.kv, keys.siteLease(t.site), "node-b", 60_000, Date.now());
  assert.ok(taken.ok);
  await setSiteSuspended(t.deps.kv, t.site, true, Date.now());
  const actor = new SiteActor(t.site, t.directory.peek(DOMAIN)!.profile, t.deps, () => {});
  actor.adopt(DOMAIN);
  try {
    assert.equal((await actor.view()).state, "suspended");
    await setSiteSuspended(t.deps.kv, t.site, false, Date.now());
    assert.equal((await actor.view()).state, "active");
  } finally {
    await actor.stop();
    await t.close();
  }
});

Deno.test("mail the site's first read finds is loaded together: one slow message does not hold back the others", async () => {
  const t = await setUp();
  // Every message whose records the actor reads, in the order it reads them.
  const readFor: string[] = [];
  const kv = new Proxy(t.deps.kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "getMany" || typeof value !== "function") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (keyList: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
        for (const key of keyList) if (key[0] === "msg") readFor.push(String(key[1]));
        return value.call(target, keyList, options);
      };
    },
  });
  // Queued while no actor works the site (as after a start, or while its lease is taken).
  const slow = await t.submit(`a@${DOMAIN}`);
  const other = await t.submit(`b@${DOMAIN}`);
  const loading = t.gated.holdLoad(slow.msg.id);
  const actor = new SiteActor(
    t.site,
    t.directory.peek(DOMAIN)!.profile,
    { ...t.deps, kv },
    () => {},
  );
  actor.adopt(DOMAIN);
  try {
    await loading.reached;
    // The first message's read is slow to come back; the second is read meanwhile.
    await until(() => readFor.includes(other.msg.id), "the second message read alongside");
    loading.open();
    for (const q of [slow, other]) {
      await until(async () => (await t.row(q.msg.id)).status === "delivered", "both delivered");
      assert.equal(t.sink.messages.filter((m) => m.to.includes(q.rows[0]!.rcpt)).length, 1);
    }
    await until(() => t.inflight.size === 0, "nothing left claimed");
  } finally {
    loading.open(); // a failed wait above must not leave the stop waiting on the held read
    await actor.stop();
    await t.close();
  }
});
