/**
 * The event log end to end: one vocabulary, each event written with the change it records, and
 * a cursor a consumer can follow through outages without gaps or repeats.
 */
import assert from "node:assert/strict";
import { startRelayWithSinks } from "./support/relay_fixture.ts";
import type { Relay } from "./support/relay_process.ts";
import { submit } from "./support/smtp_client.ts";
import { waitUntil } from "./support/operations.ts";
import { getMessage } from "./support/relay_api.ts";
import { call, newAccount, newCredential } from "./support/tenants.ts";

interface EventView {
  id: string;
  type: string;
  at: string;
  recipient: string | null;
  message: { id: string; tags: string[]; metadata: Record<string, string> };
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    POSTERN_RETRY_SCHEDULE: "1s",
    POSTERN_EVENT_SETTLE: "300ms",
    ...extra,
  };
}

/** Follows the log from `cursor` until it has nothing more right now. */
async function readFrom(
  relay: Relay,
  cursor: string | null,
  limit = 3,
): Promise<{ events: EventView[]; cursor: string | null }> {
  const events: EventView[] = [];
  for (;;) {
    const q = `limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`;
    const res = await relay.api(`/v1/events?${q}`);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    events.push(...res.json.data);
    cursor = res.json.next_cursor;
    if (!res.json.has_more) return { events, cursor };
  }
}

async function allFinal(relay: Relay, ids: readonly string[]): Promise<boolean> {
  for (const id of ids) {
    const m = await getMessage(relay, id);
    if (m.recipients.some((r) => r.status === "queued" || r.status === "deferred")) return false;
  }
  return true;
}

Deno.test("the event log pages through every event once, in id order, matching each message's timeline", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: {
        "gone@dest.test": { code: 550, message: "5.1.1 no such user" },
        "later@dest.test": {
          sequence: [{ code: 451, message: "4.7.1 try again" }, "accept"],
        },
      },
    }],
    env: env(),
  });
  const { relay } = fx;
  const ids = await submit(relay, [
    { from: "app@origin.test", to: ["ok@dest.test", "gone@dest.test"], tag: "m1" },
    { from: "app@origin.test", to: "later@dest.test", tag: "m2" },
  ]);
  const api = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to: "ok2@dest.test", text: "hi", tags: ["t1"] },
  });
  ids.push(api.json.id);
  await waitUntil(() => allFinal(relay, ids), "every recipient final", { timeoutMs: 30_000 });

  // The bounce also queues a delivery status notification to the sender: every message of the
  // account counts, so take them from the delivery log.
  const timeline = async () => {
    const all = (await relay.api("/v1/messages?limit=100")).json.data as { id: string }[];
    const out: string[] = [];
    for (const { id } of all) {
      const m = await getMessage(relay, id);
      for (const e of m.events) out.push(`${id}:${e.type}:${e.recipient ?? ""}`);
    }
    return out.sort();
  };
  let log: EventView[] = [];
  let expected: string[] = [];
  await waitUntil(
    async () => {
      expected = await timeline();
      log = (await readFrom(relay, null)).events;
      const fromLog = log.map((e) => `${e.message.id}:${e.type}:${e.recipient ?? ""}`).sort();
      return JSON.stringify(fromLog) === JSON.stringify(expected);
    },
    "the log to equal the union of the messages' timelines",
    {
      detail: () => JSON.stringify({ log: log.map((e) => e.type), expected }),
    },
  );

  const logIds = log.map((e) => e.id);
  assert.deepEqual([...logIds].sort(), logIds, "ascending ids");
  assert.equal(new Set(logIds).size, logIds.length, "no repeats");
  assert.ok(log.length >= 8);
  const types = new Set(log.map((e) => e.type));
  for (const t of ["accepted", "delivered", "bounced", "deferred"]) assert.ok(types.has(t), t);
  const tagged = log.find((e) => e.message.id === api.json.id)!;
  assert.deepEqual(tagged.message.tags, ["t1"]);

  const only = await relay.api("/v1/events?types=bounced,deferred&limit=100");
  assert.deepEqual(only.json.data.map((e: EventView) => e.type).sort(), ["bounced", "deferred"]);
  const bad = await relay.api("/v1/events?types=opened");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "invalid_request");
});

Deno.test("a consumer that polls while mail flows, and one that catches up after an outage, see the same events with no gaps", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const seen: EventView[] = [];
  let cursor: string | null = null;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const page = await readFrom(relay, cursor, 5);
      seen.push(...page.events);
      cursor = page.cursor;
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  const ids: string[] = [];
  await Promise.all([0, 1, 2].map(async (session) => {
    const batch = Array.from({ length: 10 }, (_, i) => ({
      from: "app@origin.test",
      to: `user${session}-${i}@dest.test`,
      tag: `s${session}-${i}`,
    }));
    ids.push(...await submit(relay, batch));
  }));
  await waitUntil(() => allFinal(relay, ids), "every message delivered", { timeoutMs: 30_000 });
  await waitUntil(() => seen.length >= 60, "the poller to reach 60 events", {
    detail: () => `${seen.length}`,
  });
  polling = false;
  await poller;

  const afterOutage = (await readFrom(relay, null, 7)).events;
  assert.equal(seen.length, 60, "no repeats while polling");
  assert.deepEqual(seen.map((e) => e.id), afterOutage.map((e) => e.id));
  for (const id of ids) {
    const mine = seen.filter((e) => e.message.id === id).map((e) => e.type);
    assert.deepEqual(mine, ["accepted", "delivered"], id);
  }
});

Deno.test("the log is served only up to the settle window before now", async () => {
  await using fx = await startRelayWithSinks({ env: env({ POSTERN_EVENT_SETTLE: "1h" }) });
  const { relay } = fx;
  const [id] = await submit(relay, [{ from: "a@origin.test", to: "b@dest.test", tag: "x" }]);
  await waitUntil(() => allFinal(relay, [id!]), "delivery");
  const res = await relay.api("/v1/events");
  assert.equal(res.status, 200);
  assert.deepEqual(res.json.data, [], "an hour has not passed since these events");
  assert.equal((await getMessage(relay, id!)).events.length, 2, "the timeline has them at once");
});

Deno.test("each account reads its own log only", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const unauthenticated = await relay.api("/v1/events", { token: "" });
  assert.equal(unauthenticated.status, 401);
  assert.equal(unauthenticated.json.error.code, "unauthorized");
  const other = await newAccount(relay, "other", { require_verified_sender: false });
  const key = (await newCredential(relay, {}, other)).password;
  const theirs = await call(relay, "/v1/messages", {
    token: key,
    body: { from: "app@other.test", to: "x@dest.test", text: "hi" },
  });
  assert.equal(theirs.status, 202, theirs.text);
  const [ours] = await submit(relay, [{ from: "a@origin.test", to: "b@dest.test", tag: "o" }]);
  await waitUntil(() => allFinal(relay, [ours!]), "delivery");
  let otherLog: EventView[] = [];
  let ownLog: EventView[] = [];
  await waitUntil(async () => {
    otherLog = (await call(relay, "/v1/events", { token: key })).json.data;
    ownLog = (await readFrom(relay, null)).events;
    return otherLog.length === 2 && ownLog.length === 2;
  }, "two events in each log");
  assert.ok(otherLog.every((e) => e.message.id === theirs.json.id));
  assert.ok(ownLog.every((e) => e.message.id === ours));
});

Deno.test("stats count the same events per recipient by hour, domain and tag", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: { "gone@b.test": { code: 550, message: "5.1.1 no such user" } },
    }],
    env: env(),
  });
  const { relay } = fx;
  const first = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to: ["x@a.test", "y@b.test"], text: "hi", tags: ["t1"] },
  });
  assert.equal(first.status, 202, JSON.stringify(first.json));
  const ids = [first.json.id];
  // The null sender keeps the bounce from queueing a notification back to us.
  ids.push(
    ...await submit(relay, [
      { from: "", to: ["z@a.test", "gone@b.test"], tag: "s", headers: ["X-Postern-Tags: t2"] },
    ]),
  );
  await waitUntil(() => allFinal(relay, ids), "every recipient final");
  const stats = async (by: string) => (await relay.api(`/v1/stats?by=${by}`)).json;
  let byDomain: { domain: string; counts: Record<string, number>; [k: string]: unknown }[] = [];
  await waitUntil(
    async () => {
      byDomain = (await stats("domain")).data;
      return byDomain.length === 2 && byDomain[1]!.counts.bounced === 1;
    },
    "domain counters",
    { detail: () => JSON.stringify(byDomain) },
  );
  type Latency = { p50: number | null; p90: number | null; p99: number | null };
  const withoutLatency = (rows: Record<string, unknown>[]) =>
    rows.map(({ delivery_latency_ms: _, ...rest }) => rest);
  assert.deepEqual(withoutLatency(byDomain), [
    { domain: "a.test", counts: { delivered: 2 } },
    { domain: "b.test", counts: { delivered: 1, bounced: 1 } },
  ]);
  const byTag = (await stats("tag")).data;
  assert.deepEqual(withoutLatency(byTag), [
    { tag: "t1", counts: { accepted: 2, delivered: 2 } },
    { tag: "t2", counts: { accepted: 2, delivered: 1, bounced: 1 } },
  ]);
  // Every row with deliveries carries latency percentiles (bucket bounds), in order.
  for (const row of [...byDomain, ...byTag] as unknown as { delivery_latency_ms: Latency }[]) {
    const { p50, p90, p99 } = row.delivery_latency_ms;
    assert.ok(typeof p50 === "number" && p50 > 0, JSON.stringify(row));
    assert.ok(p50 <= p90! && p90! <= p99!, JSON.stringify(row));
  }
  const byHour = (await stats("hour")).data;
  const total = byHour.reduce(
    (sum: Record<string, number>, row: { counts: Record<string, number> }) => {
      for (const [k, v] of Object.entries(row.counts)) sum[k] = (sum[k] ?? 0) + v;
      return sum;
    },
    {},
  );
  assert.deepEqual(total, { accepted: 4, delivered: 3, bounced: 1 });
  const bad = await relay.api("/v1/stats?by=week");
  assert.equal(bad.status, 400);
});

Deno.test("/metrics serves Prometheus text to the admin token or a trusted network, with nothing secret", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const scrape = (token?: string) =>
    fetch(`http://127.0.0.1:${relay.httpPort}/metrics`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  const cred = await relay.api("/v1/credentials", { body: { name: "m" } });
  const [id] = await submit(relay, [{ from: "a@origin.test", to: "b@dest.test", tag: "m" }]);
  await waitUntil(() => allFinal(relay, [id!]), "delivery");
  assert.equal((await relay.api("/v1/events", { token: "pst_wrong" })).status, 401);

  const res = await scrape(); // 127.0.0.1 is a trusted network here
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^postern_deliveries_total\{outcome="delivered"\} 1$/m);
  assert.match(text, /^postern_messages_accepted_total\{via="smtp"\} 1$/m);
  assert.match(text, /^postern_delivery_attempt_seconds_count 1$/m);
  assert.match(text, /^postern_smtp_sessions_total [1-9]\d*$/m);
  assert.match(text, /^postern_auth_failures_total\{protocol="http"\} 1$/m);
  assert.match(text, /^postern_queue_depth 0$/m);
  assert.match(text, /^postern_webhook_backlog_events 0$/m);
  assert.ok(!text.includes(relay.adminToken) && !text.includes(cred.json.password));
  assert.ok(!text.includes("b@dest.test"), "no addresses");
  await using untrusted = await startRelayWithSinks({ env: env(), trusted: false });
  const closed = untrusted.relay;
  const anonymous = await fetch(`http://127.0.0.1:${closed.httpPort}/metrics`);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).error.code, "unauthorized");
  const admin = await fetch(`http://127.0.0.1:${closed.httpPort}/metrics`, {
    headers: { authorization: `Bearer ${closed.adminToken}` },
  });
  assert.equal(admin.status, 200);
  await admin.body?.cancel();
});
