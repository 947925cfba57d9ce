/**
 * The relay on a remote store: `POSTERN_KV=http://127.0.0.1:<port>` with DENO_KV_ACCESS_TOKEN,
 * the way it runs on hosted Deno KV or a self-hosted denokv. The store is the KV Connect stand-in
 * of tests/support (denokv's protocol and limits over a local KV file); the relay is the real
 * process, the mail real SMTP, delivered to a sink on loopback.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { countTags, TAG_HEADER, taggedMessage, waitUntil } from "./support/operations.ts";
import { KvConnectStandin, startStandinProcess } from "./support/kv_connect_standin.ts";
import { startWebhookReceiver } from "./support/webhook_receiver.ts";
import { boundedKv, StoreUnavailableError } from "../core/store/bounded_kv.ts";
import { CommitFailedError, Committer } from "../core/store/committer.ts";

const TOKEN = "remote-store-test-token";

async function startStandin() {
  const dir = await Deno.makeTempDir({ prefix: "postern_remote_" });
  const standin = await KvConnectStandin.start({ path: `${dir}/remote.kv`, token: TOKEN });
  return {
    standin,
    async [Symbol.asyncDispose]() {
      await standin.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function remoteEnv(
  standin: { url: string },
  sinkPort: number,
  extra: Record<string, string> = {},
) {
  return {
    POSTERN_KV: standin.url,
    DENO_KV_ACCESS_TOKEN: TOKEN,
    // Nodes on one store seal and open its secrets under one key.
    POSTERN_SECRET_KEY: "the remote-store tests' key, shared by every node",
    POSTERN_ROUTES: `*=127.0.0.1:${sinkPort}`,
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    POSTERN_RETRY_SCHEDULE: "1s",
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_CONNECT_TIMEOUT: "2s",
    ...extra,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One transaction to many recipients with a body of `bodyBytes`; the reply to the data. */
async function sendBig(relay: Relay, tag: string, recipients: string[], bodyBytes: number) {
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
    for (const r of recipients) {
      const reply = await client.command(`RCPT TO:<${r}>`);
      assert.equal(reply.code, 250, reply.raw);
    }
    assert.equal((await client.command("DATA")).code, 354);
    await client.write(
      `From: app@origin.test\r\nTo: list@dest.test\r\nSubject: big ${tag}\r\n${TAG_HEADER}: ${tag}\r\n\r\n`,
    );
    const line = "x".repeat(998) + "\r\n";
    for (let sent = 0; sent < bodyBytes; sent += line.length * 64) {
      await client.write(line.repeat(64));
    }
    return await client.endData(120_000);
  } finally {
    await client.quit();
  }
}

Deno.test("a relay on a KV Connect store accepts mail over SMTP and delivers it", async () => {
  await using store = await startStandin();
  const sink = await startSink();
  await using relay = await startRelay({ env: remoteEnv(store.standin, sink.port) });
  try {
    const client = await SmtpClient.open(relay.smtpPort);
    const ids: string[] = [];
    try {
      await client.hello();
      for (let i = 0; i < 5; i++) {
        const reply = await client.send(
          "app@origin.test",
          `user${i}@dest.test`,
          taggedMessage(`small-${i}`),
        );
        assert.equal(reply.code, 250, reply.raw);
        ids.push(/queued as (\S+)/.exec(reply.raw)![1]!);
      }
    } finally {
      await client.quit();
    }
    // A 2 MB body (staged in chunks ahead of the message commit) to 1000 long addresses: rows,
    // due entries and index keys over one commit's limits (81 920 bytes of keys: Deno's client
    // refused this message before commits were measured), all within denokv's limits.
    const domain = ("d".repeat(60) + ".").repeat(3) + "test";
    const recipients = Array.from(
      { length: 1000 },
      (_, i) => `${"l".repeat(58)}${String(i).padStart(5, "0")}@${i % 20}${domain}`,
    );
    const big = await sendBig(relay, "big-1", recipients, 2_000_000);
    assert.equal(big.code, 250, big.raw);

    await sink.waitFor(5, { timeoutMs: 60_000 });
    await waitUntil(
      () =>
        sink.messages.filter((m) => m.headers.includes("big-1")).flatMap((m) => m.to).length >=
          1000,
      "all 1000 recipients of the big message delivered",
      {
        timeoutMs: 120_000,
        intervalMs: 200,
        // What the relay said about the mail still missing, should this ever not happen.
        detail: () => {
          const arrived = new Set(
            sink.messages.filter((m) => m.headers.includes("big-1")).flatMap((m) => m.to)
              .map((to) => to.split("@")[1]),
          );
          const missing = [...new Set(recipients.map((r) => r.split("@")[1]!))]
            .filter((d) => !arrived.has(d));
          // Every line but the successes that did arrive.
          const about = (l: Record<string, unknown>) =>
            l.result !== "success" || missing.some((d) => JSON.stringify(l).includes(`@${d}`));
          return `${sink.messages.length} messages; domains missing: ` +
            missing.map((d) => d.split("d")[0]).join(",") + "; what the relay said about them:\n" +
            relay.logs.filter((l) => l.event !== "smtp.accepted" && about(l)).slice(-60)
              .map((l) => JSON.stringify(l).slice(0, 400)).join("\n");
        },
      },
    );
    const tags = countTags(sink.messages);
    for (let i = 0; i < 5; i++) assert.equal(tags.get(`small-${i}`), 1, `small-${i}`);
    const bigOne = sink.messages.find((m) => m.headers.includes("big-1"))!;
    assert.ok(bigOne.raw.length > 2_000_000, `big message arrived whole (${bigOne.raw.length})`);

    // The HTTP API reads the remote store too.
    const view = await relay.api(`/v1/messages/${ids[0]}`);
    assert.equal(view.status, 200, JSON.stringify(view.json));
    await waitUntil(async () => {
      const v = await relay.api(`/v1/messages/${ids[0]}`);
      return JSON.stringify(v.json).includes("delivered");
    }, "message 0 shown as delivered");
    assert.deepEqual(store.standin.refusals, [], "no request went over denokv's limits");
  } finally {
    await sink.close();
  }
});

/** Submits tagged messages one per transaction until `stop()`; reconnects when cut off. */
function startSubmitter(relay: Relay, prefix: string, maxMessages: number) {
  const acked: string[] = [];
  const refused: string[] = [];
  let submitted = 0;
  let stopping = false;
  const done = (async () => {
    while (!stopping && submitted < maxMessages) {
      let client: SmtpClient | undefined;
      try {
        client = await SmtpClient.open(relay.smtpPort);
        await client.hello();
        while (!stopping && submitted < maxMessages) {
          const tag = `${prefix}-${submitted++}`;
          await client.beginData("app@origin.test", `user@dest.test`);
          await client.write(taggedMessage(tag));
          const reply = await client.endData(120_000);
          (reply.code === 250 ? acked : refused).push(`${tag} ${reply.raw}`);
        }
      } catch {
        await sleep(100);
      } finally {
        client?.close();
      }
    }
  })();
  return {
    acked,
    refused,
    done,
    stop() {
      stopping = true;
      return done;
    },
  };
}

/**
 * Two clients submit while `fault` runs (once 20 messages got 250); once 20 more got 250 after
 * it, waits until every message that got 250 has arrived at the sink and returns the counts.
 */
async function submitThrough(
  relay: Relay,
  sink: Sink,
  prefix: string,
  fault: () => Promise<void>,
): Promise<{ accepted: number; refused: string[]; duplicates: number }> {
  const submitters = [1, 2].map((n) => startSubmitter(relay, `${prefix}${n}`, 150));
  const acked = () => submitters.reduce((n, s) => n + s.acked.length, 0);
  try {
    await waitUntil(() => acked() >= 20, `20 messages accepted before the ${prefix}`, {
      timeoutMs: 60_000,
    });
    const ackedBefore = acked();
    await fault();
    await waitUntil(() => acked() >= ackedBefore + 20, `20 more accepted after the ${prefix}`, {
      timeoutMs: 90_000,
    });
  } finally {
    await Promise.all(submitters.map((s) => s.stop()));
  }
  const tags = submitters.flatMap((s) => s.acked.map((line) => line.split(" ")[0]!));
  await waitUntil(
    () => {
      const got = countTags(sink.messages);
      return tags.every((t) => got.has(t));
    },
    "every message that got 250 delivered",
    {
      timeoutMs: 120_000,
      intervalMs: 250,
      detail: () => {
        const got = countTags(sink.messages);
        return `missing ${tags.filter((t) => !got.has(t)).slice(0, 10).join(", ")}`;
      },
    },
  );
  const duplicates = [...countTags(sink.messages).values()].filter((n) => n > 1).length;
  const refused = submitters.flatMap((s) => s.refused);
  console.log(
    `${prefix}: ${tags.length} accepted, ${refused.length} refused, ${duplicates} delivered twice`,
  );
  return { accepted: tags.length, refused, duplicates };
}

Deno.test("the store stopped mid-load and restarted: every message that got 250 arrives and the relay recovers without a restart", async () => {
  await using store = await startStandin();
  const sink = await startSink();
  // A bound longer than the outage: clients wait for their reply instead of hearing 451.
  await using relay = await startRelay({
    env: remoteEnv(store.standin, sink.port, { POSTERN_STORE_RETRY: "60s" }),
  });
  try {
    const { refused } = await submitThrough(relay, sink, "outage", async () => {
      await store.standin.stop();
      await sleep(3_000);
      await store.standin.resume();
    });
    assert.deepEqual(refused, [], "no 451 while the outage was shorter than the bound");
    // The process is the same one, and answers.
    assert.equal((await relay.api("/healthz")).status, 200);
    assert.equal(relay.logs.some((l) => /crashed/.test(String(l.event))), false);
  } finally {
    await sink.close();
  }
});

Deno.test("the store killed with SIGKILL mid-load and restarted: every message that got 250 arrives", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_remote_" });
  await using standin = await startStandinProcess({ path: `${dir}/remote.kv`, token: TOKEN });
  const sink = await startSink();
  await using relay = await startRelay({
    env: remoteEnv(standin, sink.port, { POSTERN_STORE_RETRY: "60s" }),
  });
  try {
    await submitThrough(relay, sink, "store crash", async () => {
      await standin.kill9();
      await sleep(2_000);
      await standin.restart();
    });
    assert.equal((await relay.api("/healthz")).status, 200);
  } finally {
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with the store unreachable past POSTERN_STORE_RETRY, SMTP answers 451 4.3.0 and HTTP 503 with Retry-After; mail after it returns is delivered", async () => {
  await using store = await startStandin();
  const sink = await startSink();
  await using relay = await startRelay({
    env: remoteEnv(store.standin, sink.port, { POSTERN_STORE_RETRY: "2s" }),
  });
  try {
    // Warm: one message through, so the relay's caches hold what a message needs.
    const first = startSubmitter(relay, "before", 1);
    await first.done;
    assert.equal(first.acked.length, 1, first.refused.join("; "));

    // A transaction under way when the store goes: its commit is retried for the bound, then 451.
    const client = await SmtpClient.open(relay.smtpPort);
    try {
      await client.hello();
      await client.beginData("app@origin.test", "user@dest.test");
      await store.standin.stop();
      await client.write(taggedMessage("during"));
      const started = Date.now();
      const reply = await client.endData(60_000);
      assert.equal(reply.code, 451, reply.raw);
      assert.match(reply.raw, /^451 4\.3\.0/);
      assert.ok(
        Date.now() - started >= 1_500,
        `451 only once the bound is spent (${Date.now() - started} ms)`,
      );
    } finally {
      client.close();
    }
    // A new transaction while the store is still down hears a temporary refusal, never 250.
    const late = await SmtpClient.open(relay.smtpPort);
    try {
      await late.hello();
      // Whichever step first needs the store answers 4xx (the end of DATA: 451 4.3.0).
      let refused = null as string | null;
      for (const line of ["MAIL FROM:<app@origin.test>", "RCPT TO:<user@dest.test>", "DATA"]) {
        const r = await late.command(line, 60_000);
        if (r.code >= 400 && r.code < 500) {
          refused = r.raw;
          break;
        }
        assert.ok(r.code === 250 || r.code === 354, r.raw);
      }
      if (refused === null) {
        await late.write(taggedMessage("during-2"));
        refused = (await late.endData(60_000)).raw;
        assert.match(refused, /^451 4\.3\.0/);
      }
    } finally {
      late.close();
    }
    const res = await relay.api("/v1/messages", {
      body: { from: "app@origin.test", to: "user@dest.test", subject: "http during", text: "hi" },
    });
    assert.equal(res.status, 503, JSON.stringify(res.json));
    assert.equal(res.json.error.code, "unavailable");
    assert.ok(
      Number(res.headers.get("retry-after")) >= 1,
      `Retry-After ${res.headers.get("retry-after")}`,
    );

    await store.standin.resume();
    const after = startSubmitter(relay, "after", 1);
    await after.done;
    assert.equal(after.acked.length, 1, after.refused.join("; "));
    await waitUntil(
      () => countTags(sink.messages).has("after-0"),
      "the message after the outage delivered",
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal((await relay.api("/healthz")).status, 200);
  } finally {
    await sink.close();
  }
});

Deno.test("a store outage five times POSTERN_STORE_RETRY, with retries and a webhook running, crashes nothing; the relay catches up", async () => {
  await using store = await startStandin();
  // Each recipient's first attempt is deferred, so the site actors retry through the outage.
  const sink = await startSink({
    defaultBehavior: { sequence: [{ code: 451, message: "4.7.1 try later" }, "accept"] },
  });
  const receiver = await startWebhookReceiver();
  await using relay = await startRelay({
    env: remoteEnv(store.standin, sink.port, {
      POSTERN_STORE_RETRY: "1s",
      POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
      POSTERN_EVENT_SETTLE: "1s",
    }),
  });
  try {
    const hook = await relay.api("/v1/webhooks", {
      body: { url: receiver.url, events: ["delivered"] },
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.json));
    receiver.secrets.push(hook.json.secret);
    const before = startSubmitter(relay, "before", 10);
    await before.done;
    assert.equal(before.acked.length, 10, before.refused.join("; "));
    await waitUntil(() => sink.rcpts.length >= 10, "the first (deferred) attempts", {
      timeoutMs: 60_000,
    });

    await store.standin.stop();
    await sleep(5_000);
    await store.standin.resume();

    const after = startSubmitter(relay, "after", 5);
    await after.done;
    assert.equal(after.acked.length, 5, after.refused.join("; "));
    const tags = [...before.acked, ...after.acked].map((line) => line.split(" ")[0]!);
    await waitUntil(
      () => tags.every((t) => countTags(sink.messages).has(t)),
      "every accepted message delivered after the outage",
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    // Webhooks carry on too: the messages sent after the outage are reported delivered.
    await receiver.waitFor(
      () => receiver.accepted.filter((w) => w.payload?.type === "delivered").length >= 5,
      "delivered webhooks after the outage",
      60_000,
    );
    assert.equal((await relay.api("/healthz")).status, 200);
    const failures = relay.logs.filter((l) => l.level === "error" || l.level === "warn");
    console.log(
      `long outage: ${failures.length} store failures logged and retried:`,
      [...new Set(failures.map((l) => l.event))].join(", "),
    );
    assert.equal(failures.some((l) => /crashed/.test(String(l.event))), false);
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("store calls fail within POSTERN_STORE_RETRY while a remote store is down, and work again once it is back", async () => {
  await using store = await startStandin();
  const before = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  Deno.env.set("DENO_KV_ACCESS_TOKEN", TOKEN);
  const kv = boundedKv(await Deno.openKv(store.standin.url), 1_000);
  try {
    const committer = new Committer(kv, { storeRetryMs: 1_000 });
    assert.equal(typeof (await committer.commit({ apply: (op) => op.set(["k"], 1) })), "string");
    await store.standin.stop();
    const started = Date.now();
    await assert.rejects(() => kv.get(["k"]), StoreUnavailableError);
    await assert.rejects(() => Array.fromAsync(kv.list({ prefix: [] })), StoreUnavailableError);
    await assert.rejects(
      () => committer.commit({ apply: (op) => op.set(["k"], 2) }),
      (err: Error) => err instanceof CommitFailedError && err.locked,
    );
    assert.ok(Date.now() - started < 15_000, "each call gave up within its bound");
    await store.standin.resume();
    assert.equal(typeof (await committer.commit({ apply: (op) => op.set(["k"], 3) })), "string");
    // The commit abandoned during the outage may still land (the client re-sends it), before or
    // after the new one: "failed" means "unknown", which is why it is answered 451, not 5xx.
    assert.ok([2, 3].includes((await kv.get<number>(["k"])).value!));
  } finally {
    kv.close();
    if (before === undefined) Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    else Deno.env.set("DENO_KV_ACCESS_TOKEN", before);
  }
});
