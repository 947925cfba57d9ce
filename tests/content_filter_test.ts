/**
 * End to end: outbound content filtering with the real rspamd (Debian's package), started once
 * for this file on a loopback port with a config the test writes (tests/support/rspamd.ts), and
 * the real relay process in front of it. GTUBE is refused at SMTP, a message built to score
 * between an account's thresholds is held, then released and delivered (or dropped, rechecked,
 * expired), clean mail gains rspamd's X-Spam-* headers without breaking its DKIM signature, the
 * abuse brake suspends a credential that keeps sending spam, and while rspamd is stopped the
 * account's on_error decides. The last test stops rspamd, so it must stay last.
 *
 * Where rspamd is not installed every test here is skipped, and the reason printed.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type DnsServer, startDnsServer } from "./support/dns_server.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { getMessage, queuedId, waitForStatus } from "./support/relay_api.ts";
import { queuedId as rawQueuedId, SmtpClient } from "./support/smtp_client.ts";
import { procStatusBytes, randomBody, taggedMessage } from "./support/operations.ts";
import {
  call,
  type Issued,
  mailauthVerify,
  message,
  newAccount,
  newCredential,
  publish,
  send,
  session,
} from "./support/tenants.ts";
import {
  GTUBE,
  HOLD_PHRASE,
  HOLD_PHRASE_SCORE,
  type Rspamd,
  rspamdMissing,
  startRspamd,
} from "./support/rspamd.ts";

const missing = rspamdMissing();
if (missing) console.warn(`content_filter_test: skipped: ${missing}`);

// One rspamd (and the DNS responder it asks) for the whole file: its startup is slow.
let shared: Promise<{ rspamd: Rspamd; dns: DnsServer }> | null = null;
let started: Rspamd | null = null;
function rspamdOnce() {
  shared ??= (async () => {
    const dns = await startDnsServer({ txt: { "relay.test": ["v=spf1 ip4:127.0.0.1 -all"] } });
    try {
      started = await startRspamd({ dnsPort: dns.port });
      return { rspamd: started, dns };
    } catch (err) {
      await dns.close();
      throw err;
    }
  })();
  return shared;
}
globalThis.addEventListener("unload", () => {
  // A filtered or cut-short run still stops rspamd (the last test stops it otherwise).
  started?.signalStop();
  try {
    if (started) Deno.removeSync(started.dir, { recursive: true });
  } catch {
    // rspamd may still be writing its log as it stops: a temp dir left behind, no more.
  }
});

/** The shared rspamd stays up between tests, which the resource sanitizer would call a leak. */
function contentTest(name: string, fn: () => Promise<void>) {
  Deno.test({
    name,
    ignore: missing !== null,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

interface Env {
  relay: Relay;
  sink: Sink;
  rspamd: Rspamd;
  dns: DnsServer;
  [Symbol.asyncDispose](): Promise<void>;
}

async function start(env: Record<string, string> = {}): Promise<Env> {
  const { rspamd, dns } = await rspamdOnce();
  const sink = await startSink();
  let relay: Relay;
  try {
    relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_DNS: `127.0.0.1:${dns.port}`,
        POSTERN_RSPAMD_URL: rspamd.url,
        POSTERN_RSPAMD_TIMEOUT: "30s",
        ...env,
      },
    });
  } catch (error) {
    await sink.close();
    throw error;
  }
  return {
    relay,
    sink,
    rspamd,
    dns,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await sink.close();
    },
  };
}

async function setPolicy(relay: Relay, policy: Record<string, unknown>, account = "default") {
  const res = await call(relay, `/v1/accounts/${account}`, {
    method: "PATCH",
    body: { content_policy: policy },
  });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

async function submit(
  relay: Relay,
  key: Issued,
  options: { subject: string; body: string; to?: string[] },
) {
  const client = await session(relay, key);
  const reply = await send(
    client,
    "app@example.test",
    message({
      from: "App <app@example.test>",
      subject: options.subject,
      body: options.body,
      headers: ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"],
    }),
    options.to,
  );
  await client.quit();
  return reply;
}

const heldBody = `Hello,\r\nplease ${HOLD_PHRASE} for review.\r\n`;
const cleanBody = "Hello,\r\nyour order has shipped and will arrive on Tuesday.\r\n";

contentTest(
  "a GTUBE message is refused at SMTP with 550 5.7.1 and rspamd's reason, and over HTTP with 422",
  async () => {
    await using env = await start();
    const { relay, sink } = env;
    const key = await newCredential(relay);
    const reply = await submit(relay, key, { subject: "gtube", body: `Test\r\n${GTUBE}\r\n` });
    assert.equal(reply.code, 550, reply.raw);
    assert.match(reply.raw, /^550 5\.7\.1 Gtube pattern/m);

    const http = await call(relay, "/v1/messages", {
      token: key.password,
      body: { from: "app@example.test", to: "user@dest.test", subject: "gtube", text: GTUBE },
    });
    assert.equal(http.status, 422, http.text);
    assert.equal(http.json.error.code, "content_rejected");
    assert.match(http.json.error.message, /Gtube pattern/);

    // Clean mail still flows, and only it reaches the sink.
    const ok = await submit(relay, key, { subject: "clean", body: cleanBody });
    assert.equal(ok.code, 250, ok.raw);
    await sink.waitFor(1, { timeoutMs: 30_000 });
    assert.equal(sink.messages.length, 1);
    assert.match(sink.messages[0]!.headers, /Subject: clean/);

    const metrics = await relay.api("/metrics");
    assert.match(metrics.json, /postern_content_scans_total\{result="reject"\} 2/);
    assert.match(metrics.json, /postern_content_scans_total\{result="accept"\} 1/);
    assert.match(metrics.json, /postern_content_scan_seconds_count 3/);
    const stats = await call(relay, "/v1/stats");
    const counts = stats.json.data.reduce(
      (all: Record<string, number>, r: { counts: Record<string, number> }) => {
        for (const [k, v] of Object.entries(r.counts)) all[k] = (all[k] ?? 0) + v;
        return all;
      },
      {},
    );
    assert.equal(counts.scanned, 3, stats.text);
    assert.equal(counts.rejected, 2, stats.text);
    assert.ok(
      stats.json.data.some((r: { scan_latency_ms: { p50: number | null } }) =>
        r.scan_latency_ms.p50 !== null
      ),
      stats.text,
    );
  },
);

contentTest(
  "a message between hold_score and reject_score is held, not delivered, then released and delivered; a second is dropped",
  async () => {
    await using env = await start();
    const { relay, sink, rspamd } = env;
    await setPolicy(relay, { hold_score: 5, reject_score: 15 });
    const key = await newCredential(relay);

    const first = await submit(relay, key, { subject: "held one", body: heldBody });
    assert.equal(first.code, 250, first.raw);
    const heldId = queuedId(first.raw);
    // rspamd was given the envelope: queue id, credential, client, sender and recipient.
    const log = await rspamd.log();
    const line = log.split("\n").find((l) => l.includes(`qid: <${heldId}>`));
    assert.ok(line, `rspamd logged no scan of ${heldId}`);
    assert.match(line, new RegExp(`user: ${key.id}`));
    assert.match(line, /ip: 127\.0\.0\.1/);
    assert.match(line, /from: <app@example\.test>/);
    assert.match(line, /rcpts: <user@dest\.test>/);
    assert.match(line, /POSTERN_TEST_HOLD/);

    const holds = await call(relay, "/v1/holds");
    assert.equal(holds.status, 200, holds.text);
    assert.equal(holds.json.data.length, 1);
    const hold = holds.json.data[0];
    assert.equal(hold.id, heldId);
    assert.equal(hold.credential, key.id);
    assert.ok(hold.score >= HOLD_PHRASE_SCORE && hold.score < 15, String(hold.score));
    assert.ok(hold.symbols.includes("POSTERN_TEST_HOLD"), hold.symbols.join());
    // The account's own key sees the hold but may not release it.
    const own = await call(relay, "/v1/holds", { token: key.password });
    assert.deepEqual(own.json.data.map((h: { id: string }) => h.id), [heldId]);
    const denied = await call(relay, `/v1/holds/${heldId}/release`, {
      method: "POST",
      token: key.password,
    });
    assert.equal(denied.status, 403, denied.text);

    // Mail sent after it is delivered while it waits: only the clean one reaches the sink.
    const later = await submit(relay, key, { subject: "after the held one", body: cleanBody });
    assert.equal(later.code, 250, later.raw);
    await sink.waitFor(1, { timeoutMs: 30_000 });
    assert.deepEqual(sink.messages.map((m) => /Subject: (.*)/.exec(m.headers)![1]), [
      "after the held one",
    ]);
    const waiting = await getMessage(relay, heldId);
    assert.deepEqual(waiting.recipients.map((r) => r.status), ["held"]);

    const released = await call(relay, `/v1/holds/${heldId}/release`, { method: "POST" });
    assert.equal(released.status, 200, released.text);
    assert.equal(released.json.outcome, "released");
    await sink.waitFor(2, { timeoutMs: 30_000 });
    assert.match(sink.messages[1]!.headers, /Subject: held one/);
    const delivered = await waitForStatus(relay, heldId, "delivered");
    assert.deepEqual(delivered.events.map((e) => e.type), [
      "accepted",
      "held",
      "released",
      "delivered",
    ]);
    const again = await call(relay, `/v1/holds/${heldId}/release`, { method: "POST" });
    assert.equal(again.status, 404, again.text);

    // A second held message is dropped: it never leaves.
    const second = await submit(relay, key, { subject: "held two", body: heldBody });
    assert.equal(second.code, 250, second.raw);
    const droppedId = queuedId(second.raw);
    const drop = await call(relay, `/v1/holds/${droppedId}`, { method: "DELETE" });
    assert.equal(drop.status, 200, drop.text);
    assert.equal(drop.json.outcome, "dropped");
    const dropped = await waitForStatus(relay, droppedId, "dropped");
    assert.deepEqual(dropped.events.map((e) => e.type), ["accepted", "held", "dropped"]);
    assert.equal((await call(relay, "/v1/holds")).json.data.length, 0);

    // The event log (what webhooks carry) has `held` with the score and symbols.
    await waitForEvents(relay, 4);
    const log2 = await call(relay, "/v1/events?types=held,released,dropped&limit=50");
    const types = log2.json.data.map((e: { type: string }) => e.type);
    assert.deepEqual(types, ["held", "released", "held", "dropped"], log2.text);
    const heldEvent = log2.json.data[0];
    assert.ok(heldEvent.score >= HOLD_PHRASE_SCORE, JSON.stringify(heldEvent));
    assert.ok(heldEvent.symbols.includes("POSTERN_TEST_HOLD"), JSON.stringify(heldEvent));

    const stats = await call(relay, "/v1/stats");
    const heldCount = stats.json.data.reduce(
      (n: number, r: { counts: Record<string, number> }) => n + (r.counts.held ?? 0),
      0,
    );
    assert.equal(heldCount, 2, stats.text);
    const metrics = await relay.api("/metrics");
    assert.match(metrics.json, /postern_content_scans_total\{result="hold"\} 2/);
    assert.match(metrics.json, /postern_holds_total\{outcome="released"\} 1/);
    assert.match(metrics.json, /postern_holds_total\{outcome="dropped"\} 1/);
    assert.equal(sink.messages.length, 2);
  },
);

/** The event log is served a few seconds behind now (POSTERN_EVENT_SETTLE): wait for it. */
async function waitForEvents(relay: Relay, count: number) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await call(relay, "/v1/events?types=held,released,dropped&limit=50");
    if (res.json.data.length >= count) return;
    if (Date.now() > deadline) throw new Error(`events: ${res.text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

contentTest(
  "a recheck under a changed policy releases a held message; held mail left alone expires as dropped",
  async () => {
    await using env = await start({ POSTERN_HOLD_EXPIRY: "3s", POSTERN_EVENT_SETTLE: "0s" });
    const { relay, sink } = env;
    await setPolicy(relay, { hold_score: 5 });
    const key = await newCredential(relay);

    const reply = await submit(relay, key, { subject: "recheck me", body: heldBody });
    assert.equal(reply.code, 250, reply.raw);
    const id = queuedId(reply.raw);
    // Holds are per account: another account's key sees none; the admin token sees every
    // account's, or one account's with X-Postern-Account.
    const other = await newAccount(relay, "other");
    const otherKey = await newCredential(relay, {}, other);
    assert.deepEqual((await call(relay, "/v1/holds", { token: otherKey.password })).json.data, []);
    assert.equal((await call(relay, `/v1/holds/${id}`, { token: otherKey.password })).status, 404);
    assert.deepEqual((await call(relay, "/v1/holds", { account: other })).json.data, []);
    assert.deepEqual(
      (await call(relay, "/v1/holds")).json.data.map((h: { id: string }) => h.id),
      [id],
    );
    const same = await call(relay, `/v1/holds/${id}/recheck`, { method: "POST" });
    assert.equal(same.status, 200, same.text);
    assert.equal(same.json.outcome, "held");
    assert.ok(same.json.symbols.includes("POSTERN_TEST_HOLD"));
    assert.ok(same.json.hold.rechecked_at, same.text);

    await setPolicy(relay, { hold_score: 20 });
    const rechecked = await call(relay, `/v1/holds/${id}/recheck`, { method: "POST" });
    assert.equal(rechecked.status, 200, rechecked.text);
    assert.equal(rechecked.json.outcome, "released");
    await sink.waitFor(1, { timeoutMs: 30_000 });
    await waitForStatus(relay, id, "delivered");

    await setPolicy(relay, { hold_score: 5 });
    const left = await submit(relay, key, { subject: "left alone", body: heldBody });
    assert.equal(left.code, 250, left.raw);
    const leftId = queuedId(left.raw);
    const expired = await waitForStatus(relay, leftId, "dropped", 30_000);
    const dropped = expired.events.find((e) => e.type === "dropped");
    assert.match(String(dropped?.reply), /expired/i);
    assert.equal(sink.messages.length, 1);
  },
);

contentTest(
  "a clean message is delivered with rspamd's X-Spam headers when add_headers, and its DKIM signature still verifies",
  async () => {
    await using env = await start();
    const { relay, sink, dns } = env;
    const created = await call(relay, "/v1/domains", { body: { name: "example.test" } });
    assert.equal(created.status, 201, created.text);
    publish(dns.zone, created.json.records);
    const verified = await call(relay, `/v1/domains/${created.json.id}/verify`, { method: "POST" });
    assert.equal(verified.json.verified, true, verified.text);
    const key = await newCredential(relay);

    const plain = await submit(relay, key, { subject: "no headers", body: cleanBody });
    assert.equal(plain.code, 250, plain.raw);
    await sink.waitFor(1, { timeoutMs: 30_000 });
    assert.doesNotMatch(sink.messages[0]!.headers, /^X-Spam/im);

    const account = await setPolicy(relay, { add_headers: true });
    assert.equal(account.content_policy.add_headers, true);
    const reply = await submit(relay, key, { subject: "with headers", body: cleanBody });
    assert.equal(reply.code, 250, reply.raw);
    await sink.waitFor(2, { timeoutMs: 30_000 });
    const received = sink.messages[1]!;
    assert.match(received.headers, /^X-Spamd-Result: default: False \[-?\d+\.\d\d \/ 15\.00\]/m);
    assert.match(received.headers, /^X-Spam-Status: No, score=-?\d+\.\d\d required=15\.00/m);
    assert.match(received.headers, /^X-Spam-Action: no action/m);
    const verdict = await mailauthVerify(received.raw, dns.zone);
    assert.deepEqual(verdict.dkim.map((d) => d.result), ["pass"], JSON.stringify(verdict.dkim));
  },
);

contentTest(
  "the abuse brake suspends a credential after too many rejected messages; an admin re-enables it",
  async () => {
    await using env = await start({
      POSTERN_ABUSE_BRAKE_LIMIT: "2",
      POSTERN_ABUSE_BRAKE_WINDOW: "1h",
      POSTERN_EVENT_SETTLE: "0s",
    });
    const { relay, sink } = env;
    const key = await newCredential(relay);
    for (let i = 0; i < 3; i++) {
      const reply = await submit(relay, key, { subject: `spam ${i}`, body: GTUBE });
      assert.equal(reply.code, 550, reply.raw);
    }
    const suspended = await call(relay, `/v1/credentials/${key.id}`);
    assert.ok(suspended.json.suspended_at, suspended.text);
    assert.match(suspended.json.suspended_reason, /3 messages rejected or held/);
    const refused = await submit(relay, key, { subject: "clean", body: cleanBody });
    assert.equal(refused.code, 550, refused.raw);
    assert.match(refused.raw, /5\.7\.1 Credential suspended/);
    const http = await call(relay, "/v1/messages", {
      token: key.password,
      body: { from: "app@example.test", to: "user@dest.test", subject: "x", text: cleanBody },
    });
    assert.equal(http.status, 403, http.text);
    assert.equal(http.json.error.code, "credential_suspended");

    const events = await call(relay, "/v1/events?types=suspended");
    assert.equal(events.json.data.length, 1, events.text);
    assert.match(events.json.data[0].reply, new RegExp(key.id));
    const metrics = await relay.api("/metrics");
    assert.match(metrics.json, /postern_credentials_suspended_total 1/);

    const lifted = await call(relay, `/v1/credentials/${key.id}`, {
      method: "PATCH",
      body: { suspended: false },
    });
    assert.equal(lifted.status, 200, lifted.text);
    assert.equal(lifted.json.suspended_at, null);
    const ok = await submit(relay, key, { subject: "clean again", body: cleanBody });
    assert.equal(ok.code, 250, ok.raw);
    await sink.waitFor(1, { timeoutMs: 30_000 });
  },
);

const BIG_BYTES = 20_000_000;

/**
 * Sends a BIG_BYTES message ending in `tail` over a trusted-network session (after a warm-up
 * message, so the baseline includes every code path); answers its id and how much the relay's
 * peak resident memory grew while it was taken in (and scanned, when filtering is on).
 */
async function sendBig(env: Env, tail: string): Promise<{ id: string; growth: number }> {
  const client = await SmtpClient.open(env.relay.smtpPort);
  try {
    await client.hello();
    rawQueuedId(await client.send("app@origin.test", "user@dest.test", taggedMessage("warm-up")));
    await env.sink.waitFor(1, { timeoutMs: 30_000 });
    const before = await procStatusBytes(env.relay.pid, "VmHWM");
    const head = "Subject: big\r\nContent-Type: text/plain\r\n\r\n";
    const lines = randomBody(BIG_BYTES - head.length - tail.length);
    await client.beginData("app@origin.test", "user@dest.test");
    await client.write(head);
    for (let o = 0; o < lines.length; o += 1 << 20) {
      await client.write(lines.subarray(o, o + (1 << 20)));
    }
    await client.write(tail);
    const id = rawQueuedId(await client.endData(120_000));
    return { id, growth: await procStatusBytes(env.relay.pid, "VmHWM") - before };
  } finally {
    await client.quit();
  }
}

contentTest(
  "a 20 MB message is streamed to rspamd whole: a hold phrase in its last line holds it, and the scan adds less than one and a half times its size to the relay's peak memory",
  async () => {
    const tail = `${HOLD_PHRASE}\r\n`;
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    // The same message through a relay without filtering: what intake alone costs.
    let baseline: number;
    {
      await using plain = await start({
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
        POSTERN_RSPAMD_URL: "",
      });
      baseline = (await sendBig(plain, tail)).growth;
    }
    await using env = await start({ POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32" });
    const { relay, sink, rspamd } = env;
    await setPolicy(relay, { hold_score: 5 });
    const { id, growth } = await sendBig(env, tail);
    console.log(`peak memory growth: intake ${mb(baseline)}, intake and scan ${mb(growth)}`);

    const view = await getMessage(relay, id);
    assert.deepEqual(view.recipients.map((r) => r.status), ["held"]);
    // rspamd read every byte the relay stored (its log line gives the length it scanned).
    const line = (await rspamd.log()).split("\n").find((l) => l.includes(`qid: <${id}>`));
    assert.ok(line, `rspamd logged no scan of ${id}`);
    assert.equal(Number(/len: (\d+)/.exec(line)![1]), view.size, line);
    assert.ok(view.size > BIG_BYTES, String(view.size));
    // The scan reads the body back from the store in batches and streams it: what it adds is
    // garbage not yet collected (measured +13 to +22 MB for 20 MB). A scan that joined the
    // message into one buffer would add the whole message on top of that garbage.
    assert.ok(
      growth - baseline < 1.5 * BIG_BYTES,
      `the scan grew peak memory by ${mb(growth - baseline)} for a ${mb(BIG_BYTES)} message ` +
        `(intake alone ${mb(baseline)}, with the scan ${mb(growth)})`,
    );

    const released = await call(relay, `/v1/holds/${id}/release`, { method: "POST" });
    assert.equal(released.status, 200, released.text);
    const [, big] = await sink.waitFor(2, { timeoutMs: 60_000 });
    assert.ok(big!.raw.length > BIG_BYTES);
    assert.ok(big!.text.endsWith(tail), "the message arrived whole");
  },
);

// Stops the shared rspamd: keep this test last in the file.
contentTest(
  "while rspamd is stopped mail is accepted (on_error accept, counted) or refused with 451 4.7.1 (tempfail)",
  async () => {
    await using env = await start();
    const { relay, sink, rspamd, dns } = env;
    try {
      await rspamd.stop();
      const key = await newCredential(relay);
      const reply = await submit(relay, key, { subject: "unscanned", body: cleanBody });
      assert.equal(reply.code, 250, reply.raw);
      await sink.waitFor(1, { timeoutMs: 30_000 });
      await relay.waitForLog((l) => l.event === "content.scan_failed");
      const metrics = await relay.api("/metrics");
      assert.match(metrics.json, /postern_content_scans_total\{result="error"\} 1/);

      await setPolicy(relay, { on_error: "tempfail" });
      const deferred = await submit(relay, key, { subject: "deferred", body: cleanBody });
      assert.equal(deferred.code, 451, deferred.raw);
      assert.match(deferred.raw, /^451 4\.7\.1 /m);
      const http = await call(relay, "/v1/messages", {
        token: key.password,
        body: { from: "app@example.test", to: "user@dest.test", subject: "x", text: cleanBody },
      });
      assert.equal(http.status, 503, http.text);
      assert.equal(sink.messages.length, 1);
    } finally {
      await dns.close();
      await Deno.remove(rspamd.dir, { recursive: true }).catch(() => {});
    }
  },
);
