/**
 * RFC 5321 §4.5.3.2 timeouts end to end: receivers that pause their banner or take long to
 * acknowledge the final dot still get their mail, exactly once, under the default timeouts; a
 * greeting past its configured timeout defers and the attempt log says how long was waited.
 *
 * The slow receivers take real time (a 20 s banner, a 90 s final reply): both run at once
 * against one relay, so the file costs about 95 s of wall time, not 110.
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { waitForMessage, waitForStatus } from "./support/relay_api.ts";
import { countTags } from "./support/operations.ts";

const TRUSTED = { POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32", POSTERN_POLL_INTERVAL: "200ms" };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

Deno.test("a receiver that greets after 20 s and one that answers the final dot after 90 s each get the message exactly once under the default timeouts", async () => {
  const slowGreeting = await startSink({ greetingDelayMs: 20_000 });
  const slowDot = await startSink({ dataGate: () => sleep(90_000) });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_ROUTES:
        `greet.test=127.0.0.1:${slowGreeting.port},dot.test=127.0.0.1:${slowDot.port}`,
      POSTERN_RETRY_SCHEDULE: "1s", // a timed-out attempt would be retried at once: a duplicate
    },
  });
  try {
    const [greet, dot] = await submit(relay, [
      { from: "app@origin.test", to: "user@greet.test", tag: "greet" },
      { from: "app@origin.test", to: "user@dot.test", tag: "dot" },
    ]);
    const [greeted, dotted] = await Promise.all([
      waitForStatus(relay, greet!, "delivered", 60_000),
      waitForStatus(relay, dot!, "delivered", 150_000),
    ]);
    for (const view of [greeted, dotted]) {
      assert.deepEqual(view.events.map((e) => e.type), ["accepted", "delivered"], "never deferred");
    }
    assert.deepEqual([...countTags(slowGreeting.messages)], [["greet", 1]]);
    assert.deepEqual([...countTags(slowDot.messages)], [["dot", 1]]);
    assert.equal(slowGreeting.connections, 1, "one connection, not one per timeout");
    const attempt = relay.logs.find((l) =>
      l.event === "delivery.attempt" && l.rcpt === "user@dot.test"
    );
    assert.ok(attempt, "the slow delivery is in the attempt log");
    assert.ok(Number(attempt.ms) >= 89_000, `the attempt log carries the real wait: ${attempt.ms}`);
  } finally {
    await relay.stop();
    await slowGreeting.close();
    await slowDot.close();
  }
});

Deno.test("a greeting later than POSTERN_GREETING_TIMEOUT defers the mail, and the attempt log carries the real wait", async () => {
  const tarpit = await startSink({ greetingDelayMs: 30_000 });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_ROUTES: `*=127.0.0.1:${tarpit.port}`,
      POSTERN_GREETING_TIMEOUT: "2s",
      POSTERN_RETRY_SCHEDULE: "1h",
    },
  });
  try {
    const [id] = await submit(relay, [{ from: "app@origin.test", to: "u@tarpit.test", tag: "t" }]);
    const view = await waitForMessage(
      relay,
      id!,
      (m) => m.recipients[0]!.status === "deferred",
      30_000,
    );
    assert.match(view.recipients[0]!.last_reply!, /Greeting never received|timeout/i);
    const attempt = relay.logs.find((l) => l.event === "delivery.attempt" && l.result);
    assert.ok(attempt, "the deferral is in the attempt log");
    assert.ok(
      Number(attempt.ms) >= 1_900 && Number(attempt.ms) < 20_000,
      `the attempt log carries the real wait, not 0: ${attempt.ms}`,
    );
    assert.equal(tarpit.messages.length, 0);
  } finally {
    await relay.stop();
    await tarpit.close();
  }
});

Deno.test("a receiver without STARTTLS that answers the final dot later than POSTERN_CONNECT_TIMEOUT still gets the message exactly once", async () => {
  // The connect timeout bounds the connect, not a reply: nodemailer hands it to net.connect() as
  // the socket's idle timeout, which on a session never upgraded to TLS once ended it 2 s into a
  // slower reply to the dot, and the retry delivered the message a second time.
  const slowDot = await startSink({ dataGate: () => sleep(5_000), tls: "none" });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_ROUTES: `*=127.0.0.1:${slowDot.port}`,
      POSTERN_CONNECT_TIMEOUT: "2s",
      POSTERN_RETRY_SCHEDULE: "1s", // a timed-out attempt would be retried at once: a duplicate
    },
  });
  try {
    const [id] = await submit(relay, [{ from: "app@origin.test", to: "u@dot.test", tag: "dot" }]);
    const view = await waitForStatus(relay, id!, "delivered", 60_000);
    assert.deepEqual(view.events.map((e) => e.type), ["accepted", "delivered"], "never deferred");
    // A duplicate would come a second after the first: wait past it.
    await sleep(3_000);
    assert.deepEqual([...countTags(slowDot.messages)], [["dot", 1]]);
  } finally {
    await relay.stop();
    await slowDot.close();
  }
});
