/**
 * Shaping end to end: the relay as a child process, loopback sinks that script their replies,
 * and a loopback DNS server whose MX records decide which domains share a site.
 */
import assert from "node:assert/strict";
import { type LogLine, startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { submit } from "./support/smtp_client.ts";
import { startRelayWithSinks, waitForSite, writeConfig } from "./support/relay_fixture.ts";
import { getMessage, waitForMessage, waitForStatus } from "./support/relay_api.ts";
import { tagOf } from "./support/operations.ts";

const TRUSTED = { POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32", POSTERN_POLL_INTERVAL: "200ms" };

function logsOf(logs: readonly LogLine[], event: string): LogLine[] {
  return logs.filter((l) => l.event === event);
}

Deno.test("domains hosted on one MX set share one site, its actor and its connection limit", async () => {
  const sink = await startSink({
    behaviors: { "held@c.test": { code: 451, message: "4.3.0 Try again later" } },
  });
  const shared = [
    { exchange: "mx1.shared.test", priority: 10 },
    { exchange: "mx2.shared.test", priority: 20 },
  ];
  const dns = await startDnsServer({
    mx: { "a.test": shared, "b.test": shared, "c.test": [...shared].reverse() },
    a: { "mx1.shared.test": ["127.0.0.1"], "mx2.shared.test": ["127.0.0.1"] },
  });
  const config = await writeConfig({
    shaping: { provider: { shared: { match: ["shared.test"], connection_limit: 1 } } },
  });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_CONFIG: config,
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(sink.port),
      POSTERN_RETRY_SCHEDULE: "1h",
    },
  });
  try {
    const to = ["x@a.test", "y@b.test", "z@c.test", "x2@a.test", "y2@b.test", "z2@c.test"];
    await submit(relay, [
      { from: "app@origin.test", to: "held@c.test", tag: "held" },
      ...to.map((rcpt, i) => ({ from: "app@origin.test", to: rcpt, tag: `s${i}` })),
    ]);
    await sink.waitFor(to.length);
    // One connection limit for the site, not one per domain: never two sessions at once.
    assert.equal(sink.maxOpenConnections, 1, `max open ${sink.maxOpenConnections}`);
    const site = await waitForSite(
      relay,
      (s) => s.site === "mx1.shared.test,mx2.shared.test",
      "the shared site in GET /v1/queue",
    );
    assert.deepEqual(site.domains, ["a.test", "b.test", "c.test"]);
    assert.equal(site.limits.profile, "shared");
    assert.equal(site.limits.connection_limit, 1);
    assert.equal(site.depth, 1, "the held recipient still waits");
    const queue = await relay.api("/v1/queue");
    assert.equal(queue.json.data.length, 1, "one site, not three domain queues");
  } finally {
    await relay.stop();
    await sink.close();
    await dns.close();
  }
});

Deno.test("a require-TLS provider (Google, by its MX) is never sent to in clear: no STARTTLS defers with tls_failure", async () => {
  const sink = await startSink({ tls: "none" }); // offers no STARTTLS at all
  const dns = await startDnsServer({
    mx: {
      "gmail-hosted.test": [{ exchange: "aspmx.l.google.com", priority: 5 }],
      "plain.test": [{ exchange: "mx.plain.test", priority: 10 }],
    },
    a: { "aspmx.l.google.com": ["127.0.0.1"], "mx.plain.test": ["127.0.0.1"] },
  });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(sink.port),
      POSTERN_RETRY_SCHEDULE: "1h",
    },
  });
  try {
    const [google, plain] = await submit(relay, [
      { from: "app@origin.test", to: "someone@gmail-hosted.test", tag: "google" },
      { from: "app@origin.test", to: "someone@plain.test", tag: "plain" },
    ]);
    const deferred = await waitForStatus(relay, google!, "deferred");
    assert.equal(deferred.recipients[0]!.category, "tls_failure");
    assert.match(deferred.recipients[0]!.last_reply!, /STARTTLS/);
    // An ordinary site on the same server still gets opportunistic, clear-text delivery.
    await waitForStatus(relay, plain!, "delivered");
    assert.deepEqual(sink.messages.map(tagOf), ["plain"]);
    assert.ok(
      sink.rcpts.every((r) => r.rcpt !== "someone@gmail-hosted.test"),
      "not even RCPT went out in clear to the require-TLS site",
    );
    const site = await waitForSite(relay, (s) => s.site === "aspmx.l.google.com", "Google site");
    assert.equal(site.limits.profile, "google");
    assert.equal(site.limits.require_tls, true);
    assert.equal(site.limits.connection_limit, 5);
  } finally {
    await relay.stop();
    await sink.close();
    await dns.close();
  }
});

Deno.test("a 421 storm shrinks the site's concurrency and rate for the cool-down, then both recover", async () => {
  const rcpts = Array.from({ length: 8 }, (_, i) => `r${i}@dest.test`);
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: Object.fromEntries(rcpts.map((r) => [r, {
        sequence: [
          { code: 421, message: "4.7.0 Too many connections from your IP, slow down" },
          "accept",
        ],
      }])),
    }],
    config: {
      shaping: {
        default: { connection_limit: 4, backoff_cooldown: "3s", backoff_message_rate: "20/s" },
      },
    },
    env: {
      POSTERN_RETRY_SCHEDULE: "1s",
    },
  });
  const { relay } = fx;
  const ids = await submit(
    relay,
    rcpts.map((to, i) => ({ from: "app@origin.test", to, tag: `storm${i}` })),
  );
  const throttled = await relay.waitForLog((l) => l.event === "site.throttled");
  assert.ok(Number(throttled.connection_limit) < 4, JSON.stringify(throttled));
  assert.equal(throttled.rate, "20/s", "the backoff rate, as the site has none of its own");
  const during = await relay.api("/v1/queue");
  const view = during.json.data[0];
  assert.equal(view.state, "throttled", JSON.stringify(view));
  assert.ok(view.in_force.connection_limit < 4);
  assert.equal(view.in_force.max_message_rate, "20/s");
  assert.equal(view.limits.connection_limit, 4, "the configured limit stays as configured");
  assert.ok(Date.parse(view.throttled_until) > Date.parse(String(throttled.ts)));
  const recovered = await relay.waitForLog((l) => l.event === "site.recovered");
  assert.equal(recovered.rate, null, "the rate limit lifts with the cool-down");
  for (const id of ids) await waitForStatus(relay, id, "delivered");
  // Each cool-down halves once, not once per 421 that arrived during it.
  const halvings = logsOf(relay.logs, "site.throttled");
  assert.ok(halvings.length <= 2, `${halvings.length} halvings`);
  const viewed = await getMessage(relay, ids[0]!);
  assert.deepEqual(viewed.events.map((e) => e.type), ["accepted", "deferred", "delivered"]);
  assert.equal(viewed.events[1]!.category, "throttled");
});

Deno.test("a dead MX host is given up within the connect timeout and the next MX is tried at once", async () => {
  const sink = await startSink();
  const port = sink.port;
  // 127.0.0.6 listens with a full accept queue, so SYNs go unanswered: a true connect timeout.
  const silent = new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.6", ${port})); s.listen(0)
fill = []
for i in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.6", ${port}))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(0.3)
print("ready", flush=True)
time.sleep(60)`,
    ],
    stdout: "piped",
  }).spawn();
  const reader = silent.stdout.getReader();
  await reader.read();
  const dns = await startDnsServer({
    mx: {
      "failover.test": [
        { exchange: "mx-refused.failover.test", priority: 10 },
        { exchange: "mx-silent.failover.test", priority: 20 },
        { exchange: "mx-ok.failover.test", priority: 30 },
      ],
    },
    a: {
      "mx-refused.failover.test": ["127.0.0.7"], // nobody listens: refused at once
      "mx-silent.failover.test": ["127.0.0.6"],
      "mx-ok.failover.test": ["127.0.0.1"],
    },
  });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(port),
      POSTERN_CONNECT_TIMEOUT: "1s",
      POSTERN_RETRY_SCHEDULE: "1h",
    },
  });
  try {
    const [id] = await submit(relay, [{
      from: "app@origin.test",
      to: "u@failover.test",
      tag: "fo",
    }]);
    const done = await waitForStatus(relay, id!, "delivered");
    assert.deepEqual(done.events.map((e) => e.type), ["accepted", "delivered"], "never deferred");
    const failed = logsOf(relay.logs, "delivery.connect_failed");
    assert.equal(failed.length, 2, JSON.stringify(failed));
    assert.match(String(failed[0]!.error), /127\.0\.0\.7.*ECONNREFUSED/);
    assert.match(String(failed[1]!.error), /127\.0\.0\.6.*(ETIMEDOUT|timeout)/i);
    const waited = Date.parse(String(failed[1]!.ts)) - Date.parse(String(failed[0]!.ts));
    assert.ok(waited >= 900, `the silent host got its full connect timeout (${waited} ms)`);
    // A second message skips both dead hosts while they cool down.
    const [second] = await submit(relay, [{
      from: "app@origin.test",
      to: "v@failover.test",
      tag: "fo2",
    }]);
    await waitForStatus(relay, second!, "delivered");
    assert.equal(logsOf(relay.logs, "delivery.connect_failed").length, 2);
  } finally {
    await relay.stop();
    silent.kill();
    await silent.status;
    await sink.close();
    await dns.close();
  }
});

Deno.test("max_message_rate paces a site's messages, across its connections", async () => {
  const sink = await startSink();
  const config = await writeConfig({
    shaping: { default: { max_message_rate: "4/s", max_deliveries_per_connection: 2 } },
  });
  const relay = await startRelay({
    env: { ...TRUSTED, POSTERN_CONFIG: config, POSTERN_ROUTES: `*=127.0.0.1:${sink.port}` },
  });
  try {
    await submit(
      relay,
      Array.from(
        { length: 9 },
        (_, i) => ({ from: "a@origin.test", to: `p${i}@dest.test`, tag: `p${i}` }),
      ),
    );
    // The site is shown while it paces (an idle site is let go once its mail is out).
    const pacing = waitForSite(relay, (s) => s.depth > 0, "the site while it paces");
    const got = await sink.waitFor(9);
    const times = got.map((m) => m.at).sort((a, b) => a - b);
    // Nine messages at four a second, spaced evenly (GCRA): two seconds from first to last.
    // Unpaced, nine messages reach the sink within ~100 ms; arrival jitter on a busy machine
    // can shave a little off the span, so the bound proves pacing without timing it exactly.
    const span = times.at(-1)! - times[0]!;
    assert.ok(span >= 1_500, `span ${span} ms`);
    assert.equal((await pacing).limits.max_message_rate, "4/s");
  } finally {
    await relay.stop();
    await sink.close();
  }
});

Deno.test("a greylisting 451 is retried after the window it names plus 10 s, from the same source address", async () => {
  const rcpts = Array.from({ length: 4 }, (_, i) => `g${i}@dest.test`);
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: Object.fromEntries(rcpts.map((r) => [r, {
        sequence: [
          { code: 451, message: "4.7.1 Greylisted, please try again in 2 seconds" },
          "accept",
        ],
      }])),
    }],
    config: {
      pools: {
        default: {
          sources: [
            { address: "127.0.0.2", ehlo: "a.relay.test" },
            { address: "127.0.0.3", ehlo: "b.relay.test" },
          ],
        },
      },
      shaping: { default: { max_deliveries_per_connection: 1 } },
    },
    env: {
      POSTERN_RETRY_SCHEDULE: "1s", // the generic schedule would retry far sooner
    },
  });
  const { relay, sink } = fx;
  const ids = await submit(
    relay,
    rcpts.map((to, i) => ({ from: "app@origin.test", to, tag: `grey${i}` })),
  );
  const deferred = await waitForMessage(
    relay,
    ids[0]!,
    (m) => m.recipients[0]!.status === "deferred",
  );
  const ev = deferred.events.find((e) => e.type === "deferred")!;
  assert.equal(ev.category, "greylisted");
  assert.equal(Date.parse(ev.next_attempt_at!) - Date.parse(ev.at), 2_000 + 10_000);
  assert.match(deferred.recipients[0]!.waiting!, /^greylisted: .*next attempt/);
  await sink.waitFor(rcpts.length, { timeoutMs: 40_000 });
  // An attempt recorded over another means one due entry went out twice.
  assert.deepEqual(logsOf(relay.logs, "delivery.record_conflict"), [], "no entry sent twice");
  for (const rcpt of rcpts) {
    const tries = sink.rcpts.filter((r) => r.rcpt === rcpt);
    assert.equal(tries.length, 2, `${rcpt}: one greylisted try, one retry, none in between`);
    const [first, second] = tries as [typeof tries[0], typeof tries[0]];
    assert.equal(first.code, 451);
    assert.ok(second.at - first.at >= 12_000, `${rcpt} retried after ${second.at - first.at} ms`);
    assert.equal(second.remoteAddress, first.remoteAddress, `${rcpt} kept its source address`);
    assert.ok(["127.0.0.2", "127.0.0.3"].includes(first.remoteAddress), first.remoteAddress);
    const ehlo = first.remoteAddress === "127.0.0.2" ? "a.relay.test" : "b.relay.test";
    assert.equal(second.heloName, ehlo, "the EHLO name that belongs to the address");
  }
  // The sink has the retry before the relay has committed its outcome: wait for that.
  const viewed = await waitForMessage(
    relay,
    ids[0]!,
    (m) => m.recipients[0]!.status === "delivered",
  );
  const sourceEvents = viewed.events.filter((e) => e.type !== "accepted");
  assert.equal(sourceEvents.length, 2, JSON.stringify(viewed.events));
  assert.equal(
    sourceEvents[0]!.local_address,
    sourceEvents[1]!.local_address,
  );
});
