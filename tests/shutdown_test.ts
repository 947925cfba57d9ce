/**
 * SIGTERM under load: what is idle (an SMTP client that says nothing, an API connection with no
 * whole request, a webhook receiver that never answers, an outbound connection waiting for more
 * mail) does not hold the stop; a delivery
 * on the wire gets the grace and no more; nothing is lost, the restarted relay sends it all.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook_receiver.ts";
import { submit } from "./support/smtp_client.ts";
import { waitForStatus } from "./support/relay_api.ts";

/** An SMTP client that connects, reads the greeting and then says nothing. */
async function idleClient(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const greeting = new Uint8Array(512);
  const n = await conn.read(greeting);
  assert.match(new TextDecoder().decode(greeting.subarray(0, n ?? 0)), /^220 /);
  return conn;
}

function relayWith(env: Record<string, string>): Promise<Relay> {
  return startRelay({
    env: {
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_EVENT_SETTLE: "200ms",
      POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
      POSTERN_WEBHOOK_RETRY_SCHEDULE: ["0s", ...Array(300).fill("200ms")].join(","),
      ...env,
    },
  });
}

async function register(relay: Relay, receiver: WebhookReceiver, events: string[]) {
  const res = await relay.api("/v1/webhooks", { body: { url: receiver.url, events } });
  assert.equal(res.status, 201, JSON.stringify(res.json));
  receiver.secrets.push(res.json.secret);
}

/** The relay's own account of its stop: `shutdown.done` with the time it took. */
function shutdownDone(relay: Relay): { ms: number } {
  const done = relay.logs.find((l) => l.event === "shutdown.done");
  assert.ok(done, "the relay logs shutdown.done");
  return done as unknown as { ms: number };
}

async function closeAll(...things: ({ close(): unknown } | null)[]) {
  for (const t of things) {
    try {
      await t?.close();
    } catch {
      // Already closed.
    }
  }
}

Deno.test("SIGTERM with an idle SMTP client, an HTTP client that sent half a request, a webhook receiver that never answers and an idle outbound connection exits at once, not after the grace", async () => {
  const sink: Sink = await startSink({});
  const receiver = await startWebhookReceiver({ behavior: "hang" });
  // A grace far longer than any stop that waits for nothing idle.
  const relay = await relayWith({
    POSTERN_ROUTES: `dest.test=127.0.0.1:${sink.port}`,
    POSTERN_SHUTDOWN_GRACE: "60s",
  });
  let client: Deno.TcpConn | null = null;
  let httpClient: Deno.TcpConn | null = null;
  try {
    await register(relay, receiver, ["accepted", "delivered"]);
    await submit(relay, [{ from: "app@origin.test", to: "user@dest.test", tag: "idle" }]);
    await sink.waitFor(1);
    // The outbound connection now idles for more mail (the profile's idle timeout), the webhook
    // POST waits on a receiver that never answers, and a client sits in its session.
    await receiver.waitFor(() => receiver.requests.length >= 1, "the hung webhook POST");
    client = await idleClient(relay.smtpPort);
    // A connection to the API with its request's headers still coming (as a fetch client's
    // pooled connection is for a moment while it writes): it held the stop for the whole grace.
    httpClient = await Deno.connect({ hostname: "127.0.0.1", port: relay.httpPort });
    await httpClient.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: relay\r\n"));
    const { code } = await relay.stop();
    assert.equal(code, 0);
    const { ms } = shutdownDone(relay);
    // Nothing was in flight: the stop must not come near the 60 s grace. (It takes well under a
    // second; the bound only has to tell "waited for nothing" from "waited out a timeout".)
    assert.ok(ms < 10_000, `the stop took ${ms} ms with nothing in flight`);
  } finally {
    await closeAll(client, httpClient, sink, receiver);
    await relay[Symbol.asyncDispose]();
  }
});

Deno.test("SIGTERM with a delivery stalled at the receiving server exits within the grace, and the restarted relay delivers that mail and its webhooks", async () => {
  const stalled = await startSink({ defaultBehavior: "hang" });
  const answering = await startSink({});
  const receiver = await startWebhookReceiver({ behavior: "hang" });
  const graceMs = 3_000;
  let relay = await relayWith({
    POSTERN_ROUTES: `stall.test=127.0.0.1:${stalled.port}`,
    POSTERN_SHUTDOWN_GRACE: `${graceMs}ms`,
  });
  let client: Deno.TcpConn | null = null;
  try {
    await register(relay, receiver, ["accepted", "delivered"]);
    const [id] = await submit(relay, [{ from: "app@origin.test", to: "x@stall.test", tag: "s" }]);
    // The delivery is on the wire (the MX never answers its RCPT), the webhook POST hangs.
    await receiver.waitFor(() => receiver.requests.length >= 1, "the hung webhook POST");
    while (stalled.connectionSpans.length === 0) await new Promise((r) => setTimeout(r, 20));
    client = await idleClient(relay.smtpPort);
    const { code } = await relay.stop();
    assert.equal(code, 0);
    const { ms } = shutdownDone(relay);
    // The stalled delivery gets the grace; closing the store and listeners after it is quick.
    assert.ok(ms < graceMs + 2_000, `the stop took ${ms} ms with a ${graceMs} ms grace`);

    // Nothing lost: the site now answers, and so does the receiver.
    receiver.behavior = 200;
    relay = await relay.restart({ POSTERN_ROUTES: `stall.test=127.0.0.1:${answering.port}` });
    await answering.waitFor(1, { timeoutMs: 30_000 });
    await waitForStatus(relay, id!, "delivered");
    const types = () => new Set(receiver.accepted.map((w) => w.payload.type));
    await receiver.waitFor(
      () => types().has("accepted") && types().has("delivered"),
      "the accepted and delivered webhooks",
      30_000,
    );
    assert.equal(answering.messages.length, 1, "delivered once");
  } finally {
    await closeAll(client, stalled, answering, receiver);
    await relay[Symbol.asyncDispose]();
  }
});
