/**
 * Crash and restart safety, end to end: the real relay as a child process, killed with SIGKILL
 * and restarted on the same data dir, delivering to a loopback sink.
 */
import assert from "node:assert/strict";
import { freePort, type LogLine, type Relay, startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { queuedId, SmtpClient } from "./support/smtp_client.ts";
import { countTags, dumpKv, taggedMessage, waitUntil } from "./support/operations.ts";

/** Submits `count` tagged messages over one trusted-network session; returns their queue ids. */
async function submit(relay: Relay, tags: readonly string[]): Promise<string[]> {
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    const ids: string[] = [];
    for (const tag of tags) {
      ids.push(
        queuedId(await client.send("app@origin.test", "user@dest.test", taggedMessage(tag))),
      );
    }
    return ids;
  } finally {
    await client.quit();
  }
}

function attemptsFor(logs: readonly LogLine[], id: string, result?: string): LogLine[] {
  return logs.filter((line) =>
    line.event === "delivery.attempt" && line.msg === id &&
    (result === undefined || line.result === result)
  );
}

function relayEnv(sinkPort: number): Record<string, string> {
  return {
    POSTERN_ROUTES: `*=127.0.0.1:${sinkPort}`,
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    POSTERN_RETRY_SCHEDULE: "1s",
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_CONNECT_TIMEOUT: "2s",
    POSTERN_SHUTDOWN_GRACE: "5s",
  };
}

Deno.test("every message accepted while the destination is down arrives exactly once after a kill -9 and restart, and a second restart sends none again", async () => {
  const sinkPort = await freePort(); // nobody listens here until the sink starts below
  const relays: Relay[] = [];
  let sink: Awaited<ReturnType<typeof startSink>> | undefined;
  try {
    const first = await startRelay({ env: relayEnv(sinkPort) });
    relays.push(first);
    const tags = Array.from({ length: 20 }, (_, i) => `down-${i}`);
    const ids = await submit(first, tags);
    assert.equal(new Set(ids).size, tags.length);

    // Each message has been tried and deferred, so the queue holds deferred rows, not fresh ones.
    await waitUntil(
      () => ids.every((id) => attemptsFor(first.logs, id, "transient").length > 0),
      "a failed delivery attempt for every message",
    );
    await first.kill9();

    sink = await startSink({ port: sinkPort });
    const second = await first.restart();
    relays.push(second);
    await sink.waitFor(tags.length, { timeoutMs: 30_000 });
    // Delivered rows are recorded before a restart can be told apart from a replay.
    await waitUntil(
      () => ids.every((id) => attemptsFor(second.logs, id, "success").length === 1),
      "one successful attempt per message logged by the restarted relay",
    );

    const third = await second.restart();
    relays.push(third);
    // A fresh message through the same destination proves the third relay works its queue.
    const [markerId] = await submit(third, ["marker-after-second-restart"]);
    await waitUntil(
      () => countTags(sink!.messages).has("marker-after-second-restart"),
      "the marker message at the sink",
    );
    assert.deepEqual((await third.stop()).code, 0);

    const counts = countTags(sink.messages);
    const wrong = tags.filter((tag) => counts.get(tag) !== 1)
      .map((tag) => `${tag}×${counts.get(tag) ?? 0}`);
    assert.deepEqual(wrong, [], `messages not delivered exactly once: ${wrong.join(", ")}`);
    for (const id of ids) {
      assert.deepEqual(attemptsFor(third.logs, id), [], `the third relay re-sent ${id}`);
    }

    // The queue is empty: every row is delivered and no due entry points at an old message.
    const entries = await dumpKv(`${third.dataDir}/postern.kv`);
    const due = entries.filter((e) => e.key[0] === "due");
    assert.deepEqual(due.map((e) => e.key), []);
    for (const id of [...ids, markerId!]) {
      const rows = entries.filter((e) => e.key[0] === "rcpt" && e.key[1] === id);
      assert.equal(rows.length, 1);
      assert.equal((rows[0]!.value as { status: string }).status, "delivered", id);
    }
  } finally {
    for (const relay of relays.reverse()) await relay[Symbol.asyncDispose]();
    await sink?.close();
  }
});

Deno.test("a kill -9 right after a batch of 250s loses no message, and only in-flight ones may arrive twice", async () => {
  const sink = await startSink();
  const relays: Relay[] = [];
  const connectionLimit = 10;
  try {
    const first = await startRelay({
      env: {
        ...relayEnv(sink.port),
        POSTERN_HOSTNAME: "first.relay.test",
        POSTERN_CONNECTION_LIMIT: String(connectionLimit),
      },
    });
    relays.push(first);
    const tags = Array.from({ length: 60 }, (_, i) => `inflight-${i}`);
    const ids = await submit(first, tags);
    await first.kill9(); // deliveries of the last messages are still under way here

    // The EHLO name tells which process delivered each copy.
    const second = await first.restart({ POSTERN_HOSTNAME: "second.relay.test" });
    relays.push(second);
    await waitUntil(
      () => countTags(sink.messages).size >= tags.length,
      "every message at the sink",
      {
        timeoutMs: 30_000,
        detail: () => `${countTags(sink.messages).size} of ${tags.length} distinct arrived`,
      },
    );
    // Wait until the second relay has recorded every delivery: nothing more can be sent then.
    await waitUntil(
      async () => {
        for (const id of ids) {
          const res = await second.api(`/v1/messages/${id}`);
          if (res.json?.recipients?.[0]?.status !== "delivered") return false;
        }
        return true;
      },
      "every message recorded as delivered",
      { intervalMs: 200 },
    );

    const byFirst = countTags(sink.messages.filter((m) => m.heloName === "first.relay.test"));
    const bySecond = countTags(sink.messages.filter((m) => m.heloName === "second.relay.test"));
    const missing = tags.filter((tag) => !byFirst.has(tag) && !bySecond.has(tag));
    const duplicates = tags.filter((tag) => byFirst.has(tag) && bySecond.has(tag));
    const twiceByOne = tags.filter((tag) =>
      (byFirst.get(tag) ?? 0) > 1 || (bySecond.get(tag) ?? 0) > 1
    );
    const summary = `${tags.length} accepted, ${byFirst.size} delivered before the kill, ` +
      `${bySecond.size} after the restart, ${missing.length} missing, ` +
      `${duplicates.length} duplicates (${duplicates.join(", ") || "none"})`;
    assert.deepEqual(missing, [], summary);
    assert.deepEqual(twiceByOne, [], `one process delivered a message twice; ${summary}`);
    // A duplicate is a delivery the first process finished but had not recorded when killed;
    // it has at most one such transaction per connection.
    assert.ok(duplicates.length <= connectionLimit, summary);
  } finally {
    for (const relay of relays.reverse()) await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});
