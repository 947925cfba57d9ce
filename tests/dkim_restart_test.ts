/**
 * Signed mail across a crash: 2 KB messages from a verified domain are accepted (signed at
 * intake) while their destination is down, tried and deferred, then the relay is killed with
 * SIGKILL and restarted on the same data dir. A body this size rides in its due entry, and so do
 * the message's DKIM-Signature fields (core/store/messages.ts): what the restarted relay sends
 * comes from the store alone, and the receiver must still get each message once, signed, with
 * signatures that verify.
 */
import assert from "node:assert/strict";
import { freePort, type Relay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { queuedId } from "./support/smtp_client.ts";
import { waitUntil } from "./support/operations.ts";
import {
  dkimpyVerify,
  dkimSignatures,
  mailauthVerify,
  message,
  newCredential,
  send,
  session,
  startTenantRelay,
  verifiedDomain,
} from "./support/tenants.ts";

/** About 2 KB of body in 76-character lines, as the bench sends. */
const BODY = Array.from({ length: 24 }, (_, i) => `${i}`.padEnd(76, "x")).join("\r\n") + "\r\n";

Deno.test("signed 2 KB messages accepted while the destination is down arrive exactly once after a kill -9 and restart, and both signatures verify", async () => {
  const downPort = await freePort(); // nobody listens here until the sink starts below
  await using env = await startTenantRelay({
    POSTERN_ROUTES: `*=127.0.0.1:${downPort}`,
    POSTERN_RETRY_SCHEDULE: "1s",
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_CONNECT_TIMEOUT: "2s",
  });
  let restarted: Relay | undefined;
  let sink: Sink | undefined;
  try {
    await verifiedDomain(env.relay, env.dns.zone, "example.test", {
      algorithms: ["rsa", "ed25519"],
    });
    const key = await newCredential(env.relay);
    const subjects = Array.from({ length: 5 }, (_, i) => `signed across a crash ${i}`);
    const client = await session(env.relay, key);
    const ids: string[] = [];
    for (const subject of subjects) {
      const reply = await send(
        client,
        "app@example.test",
        message({ from: "app@example.test", subject, body: BODY }),
      );
      ids.push(queuedId(reply));
    }
    await client.quit();
    // Each message was tried and deferred: the queue holds the entries that deferral rewrote.
    await waitUntil(
      () =>
        ids.every((id) =>
          env.relay.logs.some((l) =>
            l.event === "delivery.attempt" && l.msg === id && l.result === "transient"
          )
        ),
      "a failed delivery attempt for every message",
      { timeoutMs: 30_000 },
    );
    await env.relay.kill9();

    const up = sink = await startSink({ port: downPort });
    restarted = await env.relay.restart();
    await up.waitFor(subjects.length, { timeoutMs: 30_000 });
    await waitUntil(
      () =>
        ids.every((id) =>
          restarted!.logs.filter((l) =>
            l.event === "delivery.attempt" && l.msg === id && l.result === "success"
          ).length === 1
        ),
      "one successful attempt per message logged by the restarted relay",
      { timeoutMs: 30_000 },
    );
    assert.equal((await restarted.stop()).code, 0);

    for (const subject of subjects) {
      const got = up.messages.filter((m) => m.headers.includes(`Subject: ${subject}\r\n`));
      assert.equal(got.length, 1, `"${subject}" arrived ${got.length} times`);
      const received = got[0]!;
      assert.match(received.text, /^DKIM-Signature: /);
      assert.deepEqual(
        dkimSignatures(received.headers).map((s) => s.get("a")),
        ["rsa-sha256", "ed25519-sha256"],
      );
      const mailauth = await mailauthVerify(received.raw, env.dns.zone);
      assert.deepEqual(mailauth.dkim.map((r) => [r.result, r.domain]), [
        ["pass", "example.test"],
        ["pass", "example.test"],
      ]);
      assert.deepEqual(await dkimpyVerify(received.raw, env.dns), [true, true]);
    }
  } finally {
    await restarted?.[Symbol.asyncDispose]();
    await sink?.close();
  }
});
