/**
 * Webhooks end to end: the relay as a child process, mail delivered to a loopback sink, events
 * POSTed to a real receiver that verifies each request with the `standardwebhooks` package.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook_receiver.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { waitUntil } from "./support/operations.ts";

const ALL_EVENTS = [
  "accepted",
  "delivered",
  "deferred",
  "bounced",
  "suppressed",
  "complained",
  "expired",
  "failed",
];

function env(sink: Sink, extra: Record<string, string> = {}): Record<string, string> {
  return {
    POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_EVENT_SETTLE: "200ms",
    POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
    // A retry every 200 ms for a minute: a test's outage ends long before events are given up,
    // however many attempts it lasts.
    POSTERN_WEBHOOK_RETRY_SCHEDULE: ["0s", ...Array(300).fill("200ms")].join(","),
    ...extra,
  };
}

async function register(
  relay: Relay,
  receiver: WebhookReceiver,
  events: string[] = ALL_EVENTS,
): Promise<{ id: string; secret: string }> {
  const res = await relay.api("/v1/webhooks", { body: { url: receiver.url, events } });
  assert.equal(res.status, 201, JSON.stringify(res.json));
  receiver.secrets.push(res.json.secret);
  return { id: res.json.id, secret: res.json.secret };
}

async function send(relay: Relay, to: string | string[], subject = "hello"): Promise<string> {
  const res = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to, subject, text: "Hello." },
  }).catch((err) => {
    // A relay that is gone cannot say why in the fetch error: show what it wrote.
    const logs = relay.logs.slice(-10).map((l) => JSON.stringify(l)).join("\n");
    throw new Error(`Cannot send: ${err}\n--- stderr ---\n${relay.stderr}\n--- logs ---\n${logs}`);
  });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  return res.json.id;
}

/** Every event of the account, read through the event log API. */
async function allEvents(relay: Relay): Promise<{ id: string; type: string }[]> {
  const out: { id: string; type: string }[] = [];
  let cursor: string | null = null;
  for (;;) {
    const res = await relay.api(`/v1/events?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(res.status, 200);
    out.push(...res.json.data);
    cursor = res.json.next_cursor;
    if (!res.json.has_more) return out;
  }
}

Deno.test("a registered endpoint receives each event once, signed so the standardwebhooks verifier accepts it", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  await using relay = await startRelay({ env: env(sink) });
  try {
    const hook = await register(relay, receiver);
    assert.match(hook.id, /^wh_[a-z0-9]{16}$/);
    assert.match(hook.secret, /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/);
    const list = await relay.api("/v1/webhooks");
    assert.equal(list.status, 200);
    assert.ok(!JSON.stringify(list.json).includes(hook.secret), "the secret is never shown again");

    const msgId = await send(relay, "user@dest.test");
    await receiver.waitFor(() => receiver.accepted.length >= 2, "accepted and delivered");
    const [accepted, delivered] = receiver.accepted;
    assert.equal(accepted!.payload.type, "accepted");
    assert.equal(delivered!.payload.type, "delivered");
    assert.equal(delivered!.payload.data.message.id, msgId);
    assert.equal(delivered!.payload.data.recipient, "user@dest.test");
    assert.equal(delivered!.id, delivered!.payload.data.id, "webhook-id is the event id");
    assert.ok(receiver.requests.every((r) => r.verifiedWith.length === 1));
    assert.ok(!relay.logs.some((l) => JSON.stringify(l).includes(hook.secret)), "never logged");

    const state = await relay.api(`/v1/webhooks/${hook.id}`);
    await waitUntil(async () =>
      (await relay.api(`/v1/webhooks/${hook.id}`)).json.delivery
        .delivered === 2, "the delivered count");
    assert.equal(state.status, 200);
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("an endpoint only hears the event types it asked for", async () => {
  const sink = await startSink({ behaviors: { "gone@dest.test": { code: 550, message: "no" } } });
  const receiver = await startWebhookReceiver();
  await using relay = await startRelay({ env: env(sink) });
  try {
    await register(relay, receiver, ["bounced"]);
    await send(relay, "user@dest.test");
    const bouncedId = await send(relay, "gone@dest.test");
    await receiver.waitFor(() => receiver.accepted.length >= 1, "the bounce");
    // Everything later than the bounce has been read past by then; nothing else arrives.
    await waitUntil(
      async () => (await allEvents(relay)).length >= 4,
      "four events in the log",
    );
    assert.deepEqual(receiver.accepted.map((r) => r.payload.type), ["bounced"]);
    assert.equal(receiver.accepted[0]!.payload.data.message.id, bouncedId);
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("URLs that reach loopback, private or link-local addresses are refused at registration", async () => {
  const sink = await startSink();
  const dns = await startDnsServer({ a: { "inside.test": ["192.168.10.5"] } });
  await using relay = await startRelay({
    env: { ...env(sink), POSTERN_WEBHOOK_ALLOW: "", POSTERN_DNS: `127.0.0.1:${dns.port}` },
  });
  try {
    for (
      const url of [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://inside.test/hook",
        "http://nowhere.test/hook",
        "ftp://example.test/hook",
        "http://user:pass@example.test/hook",
      ]
    ) {
      const res = await relay.api("/v1/webhooks", { body: { url, events: ["delivered"] } });
      assert.equal(res.status, 400, `${url}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, "invalid_request");
    }
  } finally {
    await dns.close();
    await sink.close();
  }
});

Deno.test("IPv6 forms that embed a loopback or link-local IPv4 address are refused at registration and at send time", async () => {
  const sink = await startSink();
  const dns = await startDnsServer({
    aaaa: {
      "mapped.test": ["::ffff:a9fe:a9fe"],
      "nat64.test": ["64:ff9b::7f00:1"],
      "compat.test": ["::127.0.0.1"],
    },
  });
  const relay = await startRelay({
    env: { ...env(sink), POSTERN_WEBHOOK_ALLOW: "", POSTERN_DNS: `127.0.0.1:${dns.port}` },
  });
  let second: Relay | undefined;
  try {
    for (
      const url of [
        "http://[::127.0.0.1]/hook", // IPv4-compatible
        "http://[::a9fe:a9fe]/latest/meta-data",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data", // IPv4-mapped
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:0:a9fe:a9fe]/hook", // IPv4-translated
        "http://[64:ff9b::a9fe:a9fe]/hook", // NAT64
        "http://[64:ff9b::127.0.0.1]/hook",
        "http://[2002:a9fe:a9fe::1]/hook", // 6to4
        "http://[2002:7f00:1::]/hook",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", // Teredo, client 127.0.0.1
        "http://[2001:0:a9fe:a9fe:8000:63bf:f7f7:f7f7]/hook", // Teredo, server 169.254.169.254
        "http://mapped.test/hook",
        "http://nat64.test/hook",
        "http://compat.test/hook",
      ]
    ) {
      const res = await relay.api("/v1/webhooks", { body: { url, events: ["accepted"] } });
      assert.equal(res.status, 400, `${url}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, "invalid_request");
      assert.match(
        JSON.stringify(res.json.error.details),
        /a (loopback|linkLocal) address/,
        url,
      );
    }

    // Allowed while the operator allows loopback; at send time, without it, refused again.
    second = await relay.restart({ POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8" });
    const res = await second.api("/v1/webhooks", {
      body: { url: "http://compat.test/hook", events: ["accepted"] },
    });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const third = await second.restart({ POSTERN_WEBHOOK_ALLOW: "" });
    second = third;
    await send(third, "user@dest.test");
    const refused = await third.waitForLog((l) =>
      l.event === "webhook.attempt_failed" && String(l.error).startsWith("refused:")
    );
    assert.match(String(refused.error), /embedding 127\.0\.0\.1/);
  } finally {
    await (second ?? relay)[Symbol.asyncDispose]();
    await relay[Symbol.asyncDispose]();
    await dns.close();
    await sink.close();
  }
});

Deno.test("a host name is resolved through POSTERN_DNS, the checked address is dialled, and a restart without the allowance stops delivery", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  const dns = await startDnsServer({ a: { "hooks.test": ["127.0.0.1"] } });
  const relay = await startRelay({
    env: { ...env(sink), POSTERN_DNS: `127.0.0.1:${dns.port}` },
  });
  let second: Relay | undefined;
  try {
    const res = await relay.api("/v1/webhooks", {
      body: { url: `http://hooks.test:${receiver.port}/hook`, events: ["accepted"] },
    });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    receiver.secrets.push(res.json.secret);
    await send(relay, "user@dest.test");
    await receiver.waitFor(() => receiver.accepted.length === 1, "the accepted event");
    assert.ok(dns.queries.some((q) => q.name === "hooks.test" && q.type === "A"));

    // The same endpoint is checked again at send time: without the allowance it is refused.
    second = await relay.restart({ POSTERN_WEBHOOK_ALLOW: "" });
    await send(second, "user@dest.test");
    await second.waitForLog((l) =>
      l.event === "webhook.attempt_failed" && String(l.error).startsWith("refused:")
    );
    assert.equal(receiver.requests.length, 1);
  } finally {
    await (second ?? relay)[Symbol.asyncDispose]();
    await relay[Symbol.asyncDispose]();
    await receiver.close();
    await dns.close();
    await sink.close();
  }
});

Deno.test("while the receiver fails and then stops listening, no event is lost: all arrive in order once it recovers", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver({ behavior: 500 });
  await using relay = await startRelay({ env: env(sink) });
  try {
    await register(relay, receiver);
    for (let i = 0; i < 3; i++) await send(relay, `user${i}@dest.test`);
    await receiver.waitFor(() => receiver.requests.length >= 3, "three failed attempts");
    await receiver.close(); // now nobody listens on the port
    await relay.waitForLog((l) =>
      l.event === "webhook.attempt_failed" && /ECONNREFUSED|refused/i.test(String(l.error))
    );
    await waitUntil(async () => (await allEvents(relay)).length === 6, "six events logged");
    receiver.behavior = 200;
    await receiver.open();
    await receiver.waitFor(() => receiver.accepted.length >= 6, "every event");

    const expected = (await allEvents(relay)).map((e) => e.id);
    const got = receiver.accepted.map((r) => r.id);
    assert.deepEqual(got, expected, "each event once, in log order");
    assert.deepEqual([...got].sort(), got, "ids ascend");
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("events still undelivered when the relay is killed are delivered after a restart", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver({ behavior: 503 });
  const relay = await startRelay({ env: env(sink) });
  let second: Relay | undefined;
  try {
    await register(relay, receiver);
    const ids = [await send(relay, "a@dest.test"), await send(relay, "b@dest.test")];
    await receiver.waitFor(() => receiver.requests.length >= 2, "failed attempts");
    await relay.kill9();
    receiver.behavior = 200;
    second = await relay.restart();
    await receiver.waitFor(() => receiver.accepted.length >= 4, "all four events");
    const types = receiver.accepted.map((r) => `${r.payload.type}:${r.payload.data.message.id}`);
    for (const id of ids) {
      assert.ok(types.includes(`accepted:${id}`), types.join(" "));
      assert.ok(types.includes(`delivered:${id}`), types.join(" "));
    }
  } finally {
    await (second ?? relay)[Symbol.asyncDispose]();
    await relay[Symbol.asyncDispose]();
    await receiver.close();
    await sink.close();
  }
});

Deno.test("after a rotation both secrets sign for the overlap, and the new one is shown once", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  await using relay = await startRelay({ env: env(sink) });
  try {
    const hook = await register(relay, receiver, ["accepted"]);
    const rotated = await relay.api(`/v1/webhooks/${hook.id}/rotate`, { method: "POST" });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
    const fresh: string = rotated.json.secret;
    assert.notEqual(fresh, hook.secret);
    assert.equal(rotated.json.secrets.length, 2);
    assert.ok(rotated.json.secrets[0].expires_at, "the old secret expires");

    receiver.secrets = [hook.secret, fresh];
    await send(relay, "user@dest.test");
    await receiver.waitFor(() => receiver.accepted.length === 1, "the accepted event");
    const request = receiver.accepted[0]!;
    assert.equal(request.signatures.length, 2);
    assert.deepEqual(request.verifiedWith, [hook.secret, fresh], "either secret verifies");
    const view = await relay.api(`/v1/webhooks/${hook.id}`);
    assert.ok(!JSON.stringify(view.json).includes(fresh));
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("an event given up after its retries stays listed and comes again on replay", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver({ behavior: 500 });
  await using relay = await startRelay({
    env: env(sink, { POSTERN_WEBHOOK_RETRY_SCHEDULE: "0s,50ms,50ms" }),
  });
  try {
    const hook = await register(relay, receiver, ["accepted"]);
    const msgId = await send(relay, "user@dest.test");
    await waitUntil(async () => {
      const res = await relay.api(`/v1/webhooks/${hook.id}/failures`);
      return res.json.data.length === 1;
    }, "the event listed as given up");
    const failures = (await relay.api(`/v1/webhooks/${hook.id}/failures`)).json.data;
    assert.equal(failures[0].message_id, msgId);
    // Three tries at most: fewer when the event outlived the schedule's span before its turn.
    assert.ok(failures[0].attempts >= 1 && failures[0].attempts <= 3, `${failures[0].attempts}`);
    assert.equal(failures[0].last_error, "HTTP 500");
    assert.equal(receiver.requests.length, failures[0].attempts);

    receiver.behavior = 200;
    const replay = await relay.api(
      `/v1/webhooks/${hook.id}/replay?since=${failures[0].event_id}`,
      { method: "POST" },
    );
    assert.equal(replay.status, 200, JSON.stringify(replay.json));
    await receiver.waitFor(() => receiver.accepted.length === 1, "the replayed event");
    assert.equal(receiver.accepted[0]!.id, failures[0].event_id);
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("an endpoint that never answers delays neither mail nor another endpoint", async () => {
  const sink = await startSink();
  const stuck = await startWebhookReceiver({ behavior: "hang" });
  const healthy = await startWebhookReceiver();
  await using relay = await startRelay({ env: env(sink) });
  try {
    await register(relay, stuck);
    await register(relay, healthy);
    for (let i = 0; i < 5; i++) await send(relay, `user${i}@dest.test`);
    await sink.waitFor(5);
    await healthy.waitFor(() => healthy.accepted.length >= 10, "every event at the healthy one");
    assert.equal(stuck.requests.length, 1, "the stuck endpoint holds its first event");
  } finally {
    await stuck.close();
    await healthy.close();
    await sink.close();
  }
});
