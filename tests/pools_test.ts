/**
 * IP pools and smarthost pools end to end: outbound connections really bind the chosen source
 * address (127.0.0.2, 127.0.0.3 on loopback), with its EHLO name; weights, warm-up caps per
 * site, per-site deprioritisation; a route's hosts tried in order with a cool-down, and AUTH.
 */
import assert from "node:assert/strict";
import { freePort, startRelay } from "./support/relay_process.ts";
import { type ReceivedMessage, type Sink, startSink } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { writeConfig } from "./support/relay_fixture.ts";
import { createCredential, waitForStatus } from "./support/relay_api.ts";
import { tagOf, waitUntil } from "./support/operations.ts";

const TRUSTED = { POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32", POSTERN_POLL_INTERVAL: "200ms" };
const EHLO: Record<string, string> = { "127.0.0.2": "a.relay.test", "127.0.0.3": "b.relay.test" };

function bySource(messages: readonly ReceivedMessage[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of messages) out[m.remoteAddress] = (out[m.remoteAddress] ?? 0) + 1;
  return out;
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

Deno.test("a pool's sources are picked by weight; each connection binds its address and EHLO name; X-Postern-Pool never leaves", async () => {
  const sink = await startSink();
  const config = await writeConfig({
    pools: {
      blue: {
        sources: [
          { address: "127.0.0.2", ehlo: "a.relay.test", weight: 1 },
          { address: "127.0.0.3", ehlo: "b.relay.test", weight: 1 },
        ],
      },
    },
    shaping: { default: { max_deliveries_per_connection: 1 } },
  });
  const relay = await startRelay({
    env: { ...TRUSTED, POSTERN_CONFIG: config, POSTERN_ROUTES: `*=127.0.0.1:${sink.port}` },
  });
  try {
    const n = 16;
    await submit(relay, [
      ...Array.from({ length: n }, (_, i) => ({
        from: "app@origin.test",
        to: `w${i}@dest.test`,
        tag: `blue${i}`,
        headers: ["X-Postern-Pool: blue"],
      })),
      { from: "app@origin.test", to: "nopool@dest.test", tag: "nopool" },
    ]);
    const got = await sink.waitFor(n + 1);
    const pooled = got.filter((m) => tagOf(m)!.startsWith("blue"));
    const counts = bySource(pooled);
    assert.deepEqual(
      Object.keys(counts).sort(),
      ["127.0.0.2", "127.0.0.3"],
      JSON.stringify(counts),
    );
    for (const m of pooled) {
      assert.equal(m.heloName, EHLO[m.remoteAddress], "EHLO name of the bound address");
      assert.doesNotMatch(m.headers, /X-Postern-Pool/i, "the control header was removed");
    }
    // Mail naming no pool (and no "default" pool configured) goes out as before.
    const plain = got.find((m) => tagOf(m) === "nopool")!;
    assert.equal(plain.remoteAddress, "127.0.0.1");
    assert.equal(plain.heloName, "relay.test");
  } finally {
    await relay.stop();
    await sink.close();
  }
});

Deno.test("a warm-up plan caps a new source's daily volume per site and spills the rest to warm sources", async () => {
  const sinkA = await startSink();
  const sinkB = await startSink();
  const config = await writeConfig({
    pools: {
      default: {
        sources: [
          // New and heavily weighted, but allowed only 3 messages per site today.
          {
            address: "127.0.0.3",
            ehlo: "b.relay.test",
            weight: 100,
            warmup: { start: today(), daily: [3, 10] },
          },
          { address: "127.0.0.2", ehlo: "a.relay.test", weight: 1 },
        ],
      },
    },
    shaping: { default: { max_deliveries_per_connection: 1 } },
  });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_CONFIG: config,
      POSTERN_ROUTES: `site-a.test=127.0.0.1:${sinkA.port},site-b.test=127.0.0.1:${sinkB.port}`,
    },
  });
  try {
    const n = 10;
    await submit(relay, [
      ...Array.from(
        { length: n },
        (_, i) => ({ from: "app@o.test", to: `a${i}@site-a.test`, tag: `a${i}` }),
      ),
      ...Array.from(
        { length: n },
        (_, i) => ({ from: "app@o.test", to: `b${i}@site-b.test`, tag: `b${i}` }),
      ),
    ]);
    for (const sink of [sinkA, sinkB]) {
      const counts = bySource(await sink.waitFor(n));
      assert.deepEqual(
        counts,
        { "127.0.0.3": 3, "127.0.0.2": n - 3 },
        `per site: ${JSON.stringify(counts)}`,
      );
    }
    // The cap outlives a restart: the day's count is kept in the store, not only in memory.
    const again = await relay.restart();
    try {
      await submit(again, [{ from: "app@o.test", to: "late@site-a.test", tag: "late" }]);
      const all = await sinkA.waitFor(n + 1);
      assert.equal(all.find((m) => tagOf(m) === "late")!.remoteAddress, "127.0.0.2");
    } finally {
      await again.stop();
    }
  } finally {
    await relay.stop().catch(() => {});
    await sinkA.close();
    await sinkB.close();
  }
});

Deno.test("a source that one site blocks is deprioritised at that site only", async () => {
  const blocked = { code: 451, message: "4.7.1 Client host [127.0.0.3] blocked using zen.example" };
  const sinkA = await startSink({ sourceBehaviors: { "127.0.0.3": blocked } });
  const sinkB = await startSink();
  const config = await writeConfig({
    pools: {
      default: {
        sources: [
          { address: "127.0.0.3", ehlo: "b.relay.test", weight: 3 },
          { address: "127.0.0.2", ehlo: "a.relay.test", weight: 1 },
        ],
      },
    },
    shaping: { default: { max_deliveries_per_connection: 1, connection_limit: 1 } },
  });
  const relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_CONFIG: config,
      POSTERN_ROUTES: `site-a.test=127.0.0.1:${sinkA.port},site-b.test=127.0.0.1:${sinkB.port}`,
      POSTERN_RETRY_SCHEDULE: "1s",
    },
  });
  try {
    await submit(
      relay,
      Array.from(
        { length: 6 },
        (_, i) => ({ from: "app@o.test", to: `a${i}@site-a.test`, tag: `a${i}` }),
      ),
    );
    await waitUntil(
      () => sinkA.rcpts.some((r) => r.remoteAddress === "127.0.0.3" && r.code === 451),
      "site A blocking 127.0.0.3",
    );
    const blockedAt = sinkA.rcpts.find((r) => r.remoteAddress === "127.0.0.3")!.at;
    await submit(relay, [
      ...Array.from(
        { length: 4 },
        (_, i) => ({ from: "app@o.test", to: `x${i}@site-a.test`, tag: `x${i}` }),
      ),
      ...Array.from(
        { length: 12 },
        (_, i) => ({ from: "app@o.test", to: `b${i}@site-b.test`, tag: `b${i}` }),
      ),
    ]);
    await sinkA.waitFor(10, { timeoutMs: 30_000 });
    await sinkB.waitFor(12);
    const laterAtA = sinkA.rcpts.filter((r) => r.at > blockedAt);
    // The weighted pick may have sent a message or two through 127.0.0.2 before the block;
    // every other one of the ten must reach A after it.
    const deliveredBefore = sinkA.rcpts.filter((r) => r.at < blockedAt && r.code < 400).length;
    assert.ok(
      laterAtA.length >= 10 - deliveredBefore,
      `${laterAtA.length} later RCPTs at A, ${deliveredBefore} delivered before the block`,
    );
    assert.ok(
      laterAtA.every((r) => r.remoteAddress === "127.0.0.2"),
      `site A after the block: ${JSON.stringify(laterAtA.map((r) => r.remoteAddress))}`,
    );
    assert.ok(
      relay.logs.some((l) => l.event === "site.source_deprioritised" && l.source === "127.0.0.3"),
    );
    const atB = bySource(sinkB.messages);
    assert.ok((atB["127.0.0.3"] ?? 0) > 0, `site B still uses 127.0.0.3: ${JSON.stringify(atB)}`);
  } finally {
    await relay.stop();
    await sinkA.close();
    await sinkB.close();
  }
});

Deno.test("a credential's pool chooses the source; the X-Postern-Pool header overrides it with a granted pool", async () => {
  const sink = await startSink();
  const config = await writeConfig({
    pools: {
      default: { sources: [{ address: "127.0.0.2", ehlo: "a.relay.test" }] },
      warm: { sources: [{ address: "127.0.0.3", ehlo: "b.relay.test" }] },
    },
  });
  const relay = await startRelay({
    env: { ...TRUSTED, POSTERN_CONFIG: config, POSTERN_ROUTES: `*=127.0.0.1:${sink.port}` },
  });
  try {
    const cred = await createCredential(relay, "pooled-app");
    const patch = await relay.api(`/v1/credentials/${cred.id}`, {
      method: "PATCH",
      body: { pool: "warm", pools: ["default"] },
    });
    assert.equal(patch.status, 200, JSON.stringify(patch.json));
    const send = async (subject: string, headers?: Record<string, string>) => {
      const res = await relay.api("/v1/messages", {
        token: cred.password,
        body: {
          from: "app@origin.test",
          to: `${subject}@dest.test`,
          subject,
          text: "x",
          headers: { "X-Postern-Test-Id": subject, ...headers },
        },
      });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      return res.json.id as string;
    };
    await send("bycredential");
    await send("byheader", { "X-Postern-Pool": "default" });
    await submit(relay, [{ from: "app@origin.test", to: "trusted@dest.test", tag: "trusted" }]);
    const got = await sink.waitFor(3);
    const source = (tag: string) => got.find((m) => tagOf(m) === tag)!.remoteAddress;
    assert.equal(source("bycredential"), "127.0.0.3", "the credential's pool");
    assert.equal(source("byheader"), "127.0.0.2", "the header's pool");
    assert.equal(source("trusted"), "127.0.0.2", "no credential: the default pool");
  } finally {
    await relay.stop();
    await sink.close();
  }
});

Deno.test("a smarthost route tries its hosts in order, skips a failed host for its cool-down, and logs in with AUTH", async () => {
  const sink = await startSink({ auth: { user: "relayuser", pass: "s3cret-pass" } });
  const dead = await freePort(); // nobody listens here
  const config = await writeConfig({
    routes: {
      "*": {
        hosts: [`127.0.0.1:${dead}`, `127.0.0.1:${sink.port}`],
        auth: { user: "relayuser", pass: "s3cret-pass" },
        // The sink's certificate is self-signed: this route opts out of verification explicitly.
        tls: "encrypt",
      },
    },
    shaping: { default: { max_deliveries_per_connection: 1, connection_limit: 1 } },
  });
  const relay = await startRelay({ env: { ...TRUSTED, POSTERN_CONFIG: config } });
  try {
    const ids = await submit(
      relay,
      Array.from(
        { length: 4 },
        (_, i) => ({ from: "app@o.test", to: `s${i}@dest.test`, tag: `s${i}` }),
      ),
    );
    for (const id of ids) {
      const m = await waitForStatus(relay, id, "delivered");
      assert.deepEqual(m.events.map((e) => e.type), ["accepted", "delivered"], "never deferred");
    }
    for (const m of sink.messages) {
      assert.equal(m.user, "relayuser", "logged in");
      assert.equal(m.secure, true, "credentials only over TLS");
    }
    const failed = relay.logs.filter((l) => l.event === "delivery.connect_failed");
    assert.equal(
      failed.length,
      1,
      `the dead host was tried once, then skipped: ${JSON.stringify(failed)}`,
    );
    assert.match(String(failed[0]!.host), new RegExp(`:${dead}$`));
    assert.ok(!JSON.stringify(relay.logs).includes("s3cret-pass"), "the password is never logged");
  } finally {
    await relay.stop();
    await sink.close();
  }
});

Deno.test("a smarthost that refuses the login defers with auth_failure and never bounces", async () => {
  const sink: Sink = await startSink({ auth: { user: "relayuser", pass: "right" } });
  const config = await writeConfig({
    routes: {
      "*": {
        hosts: [`127.0.0.1:${sink.port}`],
        auth: { user: "relayuser", pass: "wrong" },
        tls: "encrypt", // a self-signed sink, trusted explicitly
      },
    },
  });
  const relay = await startRelay({
    env: { ...TRUSTED, POSTERN_CONFIG: config, POSTERN_RETRY_SCHEDULE: "1h" },
  });
  try {
    const [id] = await submit(relay, [{ from: "app@o.test", to: "u@dest.test", tag: "auth" }]);
    const m = await waitForStatus(relay, id!, "deferred");
    assert.equal(m.recipients[0]!.category, "auth_failure");
    assert.equal(sink.messages.length, 0);
  } finally {
    await relay.stop();
    await sink.close();
  }
});
