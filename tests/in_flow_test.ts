/**
 * Intake flow control (POSTERN_IN_FLOW_DELAY, after Postfix's in_flow_delay), as a client sees
 * it: while the receiving side is slower than the senders, the relay's backlog of mail waiting
 * for its first delivery stays bounded because a new MAIL FROM waits for a delivery to end,
 * rather than the queue growing for as long as the clients keep sending; the wait ends as soon as
 * a delivery does, and every message still arrives exactly once.
 */
import assert from "node:assert/strict";
import { queueDrained, startRelayWithSinks } from "./support/relay_fixture.ts";
import { type SmtpClient, SmtpClient as Client } from "./support/smtp_client.ts";
import { IN_FLOW_LIMITS } from "../core/policy/in_flow.ts";
import type { Relay } from "./support/relay_process.ts";

/** A receiver that holds each message's reply until the test lets one (or all) go. */
function heldReplies() {
  const held: (() => void)[] = [];
  const arrivals = new Set<() => void>();
  let open = false;
  return {
    gate: () =>
      open ? Promise.resolve() : new Promise<void>((resolve) => {
        held.push(resolve);
        for (const notify of arrivals) notify();
      }),
    /** Resolves once at least one reply is held. */
    async someHeld() {
      while (held.length === 0) await new Promise<void>((r) => arrivals.add(r));
    },
    releaseOne() {
      held.shift()!();
    },
    releaseAll() {
      open = true;
      for (const resolve of held.splice(0)) resolve();
    },
  };
}

/** About 1 MB of plain lines, with the tag that tells the messages apart at the sink. */
function message(tag: string): Uint8Array {
  const line = "x".repeat(998) + "\r\n";
  return new TextEncoder().encode(
    `From: <s@origin.test>\r\nTo: <r@dest.test>\r\nSubject: ${tag}\r\nX-Tag: ${tag}\r\n\r\n` +
      line.repeat(1000),
  );
}

/**
 * Whether the pending MAIL FROM is held for deliveries (the relay's /metrics shows a transaction
 * waiting) rather than answered: whichever comes first decides.
 */
async function heldForDeliveries(relay: Relay, pending: Promise<unknown>): Promise<boolean> {
  let answered = false;
  const reply = pending.then(() => (answered = true), () => (answered = true));
  const held = (async () => {
    while (!answered) {
      const metrics = String((await relay.api("/metrics")).json);
      if (/^postern_in_flow_waiting 1$/m.test(metrics)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  })();
  return await Promise.race([reply.then(() => false), held]);
}

async function finish(client: SmtpClient, data: Uint8Array): Promise<string> {
  assert.equal((await client.command("RCPT TO:<r@dest.test>")).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
  await client.write(data);
  const reply = await client.endData(60_000);
  assert.equal(reply.code, 250, reply.raw);
  return reply.raw;
}

Deno.test("with a slow receiver, a new MAIL FROM waits for a delivery instead of the queue growing; nothing is lost or sent twice", async () => {
  const receiver = heldReplies();
  await using f = await startRelayWithSinks({
    sinks: [{ dataGate: receiver.gate }],
    // Long enough that only a delivery ending lets the waiting transaction go on.
    env: { POSTERN_IN_FLOW_DELAY: "10m" },
  });
  const port = f.relay.smtpPort;
  const client = await Client.open({ port, replyTimeoutMs: 120_000 });
  let expectedCount = 0;
  try {
    await client.hello();
    const size = message("m0").length;
    // More than the backlog's byte limit could ever take without a delivery ending.
    const most = Math.ceil(IN_FLOW_LIMITS.bytes / size) + 1;
    let accepted = 0;
    let waiting: Promise<{ code: number; raw: string }> | null = null;
    for (let i = 0; i < most + 1; i++) {
      const mail = client.command("MAIL FROM:<s@origin.test>");
      if (await heldForDeliveries(f.relay, mail)) {
        waiting = mail;
        break;
      }
      assert.equal((await mail).code, 250);
      await finish(client, message(`m${i}`));
      accepted++;
    }
    assert.ok(waiting, `MAIL FROM was answered at once after ${accepted} undelivered messages`);
    assert.ok(accepted >= 1 && accepted <= most, `${accepted} accepted before the pause`);
    assert.equal(f.sink.messages.length, 0, "the receiver has answered nothing yet");
    // The backlog is what the limit allows, not what the client sent.
    const queue = await f.relay.api("/v1/queue");
    // deno-lint-ignore no-explicit-any -- the API's JSON
    const depth = (queue.json.data as any[]).reduce((n, site) => n + site.depth, 0);
    assert.equal(depth, accepted);

    // One delivery ends: the waiting transaction goes on.
    await receiver.someHeld();
    receiver.releaseOne();
    assert.equal((await waiting).code, 250);
    await finish(client, message(`m${accepted}`));
    // An operator sees the wait, and that a delivery (not the delay) ended it.
    const metrics = String((await f.relay.api("/metrics")).json);
    assert.match(metrics, /^postern_in_flow_pauses_total\{ended="delivery"\} [1-9]/m);
    assert.doesNotMatch(metrics, /ended="delay"/);

    receiver.releaseAll();
    expectedCount = accepted + 1;
    const received = await f.sink.waitFor(expectedCount, { timeoutMs: 120_000 });
    const tags = received.map((m) => /^X-Tag: (\S+)/m.exec(m.headers)?.[1]);
    assert.deepEqual(
      [...new Set(tags)].sort(),
      Array.from({ length: accepted + 1 }, (_, i) => `m${i}`).sort(),
    );
  } finally {
    await client.quit();
  }
  // Every attempt is recorded and nothing is left to retry: no message was sent twice.
  await queueDrained(f.relay, 60_000);
  assert.equal(f.sink.messages.length, expectedCount);
});

Deno.test("mail waiting on a destination's own pace (a message rate) does not hold intake back for anyone", async () => {
  await using f = await startRelayWithSinks({
    // Every site paced to one message an hour: all but the first wait on the destination.
    config: { shaping: { default: { max_message_rate: "1/h" } } },
    // Long enough that a pause would be seen at once.
    env: { POSTERN_IN_FLOW_DELAY: "10m" },
  });
  const client = await Client.open({ port: f.relay.smtpPort, replyTimeoutMs: 120_000 });
  const size = message("p0").length;
  // More than the backlog's byte limit: a slow receiver would have paused intake before this.
  const count = Math.ceil(IN_FLOW_LIMITS.bytes / size) + 2;
  try {
    await client.hello();
    for (let i = 0; i < count; i++) {
      const mail = client.command("MAIL FROM:<s@origin.test>");
      assert.equal(await heldForDeliveries(f.relay, mail), false, `MAIL FROM ${i + 1} was held`);
      assert.equal((await mail).code, 250);
      await finish(client, message(`p${i}`));
    }
  } finally {
    await client.quit();
  }
  const queue = await f.relay.api("/v1/queue");
  // deno-lint-ignore no-explicit-any -- the API's JSON
  const depth = (queue.json.data as any[]).reduce((n, site) => n + site.depth, 0);
  assert.ok(depth >= count - 1, `${depth} queued of ${count} accepted`);
  const metrics = String((await f.relay.api("/metrics")).json);
  assert.doesNotMatch(metrics, /^postern_in_flow_pauses_total\{/m);
});
