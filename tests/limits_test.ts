/**
 * Resource limits, end to end (core/config/limits.ts; README "Security and limits"): per-client
 * connection count and rate, total sessions, command line length, header size, recipients per
 * message, errors per session, idle and whole-session deadlines, the DATA minimum rate, and the
 * HTTP body size, JSON depth and request rate per key. Loopback is not exempt, and a flood from
 * one client (127.0.0.2) never stops another (127.0.0.1) from submitting.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { queuedId, SmtpClient, type SmtpReply } from "./support/smtp_client.ts";
import { taggedMessage } from "./support/operations.ts";
import { newCredential } from "./support/tenants.ts";

const TRUSTED = { POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32" };

/** 127.0.0.1 (trusted) submits one message and hears 250. */
async function submitFromHere(relay: Relay, tag: string): Promise<string> {
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    return queuedId(await client.send("app@origin.test", "user@dest.test", taggedMessage(tag)));
  } finally {
    await client.quit();
  }
}

async function connectFrom(relay: Relay, localAddress: string) {
  return await SmtpClient.connect({ port: relay.smtpPort, localAddress });
}

Deno.test("a connection flood from 127.0.0.2 is held to its per-client limit, and 127.0.0.1 still submits", async () => {
  await using relay = await startRelay({ env: TRUSTED }); // the default limit: 50 per client
  const flood: SmtpClient[] = [];
  const greetings: SmtpReply[] = [];
  try {
    for (let i = 0; i < 60; i++) {
      const { client, greeting } = await connectFrom(relay, "127.0.0.2");
      flood.push(client);
      greetings.push(greeting);
    }
    const refused = greetings.filter((g) => g.code === 421);
    assert.equal(greetings.filter((g) => g.code === 220).length, 50);
    assert.equal(refused.length, 10);
    assert.match(refused[0]!.raw, /^421 4\.7\.0 .*too many connections from your address/);
    // The 50 sessions let in keep busy with bad commands (each is slowed past 10 errors and
    // closed at 20), and while they do, 127.0.0.1 is another client.
    for (const [i, c] of flood.entries()) {
      if (greetings[i]!.code === 220) await c.write("RCPT TO:<a@dest.test>\r\n".repeat(30));
    }
    await submitFromHere(relay, "during-flood");
  } finally {
    for (const c of flood) c.close();
  }
  // Closed sessions no longer count.
  for (let i = 0; i < 200; i++) {
    const { client, greeting } = await connectFrom(relay, "127.0.0.2");
    client.close();
    if (greeting.code === 220) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail("127.0.0.2 could not connect again after its sessions closed");
});

Deno.test("one trusted host opens 180 sessions at once and all are greeted, while an untrusted one still hears 421 past 50", async () => {
  await using relay = await startRelay({ env: TRUSTED }); // the defaults: 500 trusted, 50 others
  const held: SmtpClient[] = [];
  try {
    const trusted = await Promise.all(
      Array.from({ length: 180 }, () => connectFrom(relay, "127.0.0.1")),
    );
    held.push(...trusted.map((t) => t.client));
    assert.deepEqual(
      trusted.filter((t) => t.greeting.code !== 220).map((t) => t.greeting.raw),
      [],
      "every trusted session is greeted",
    );
    const others: SmtpReply[] = [];
    for (let i = 0; i < 51; i++) {
      const { client, greeting } = await connectFrom(relay, "127.0.0.2");
      held.push(client);
      others.push(greeting);
    }
    assert.equal(others.filter((g) => g.code === 220).length, 50);
    assert.match(others[50]!.raw, /^421 4\.7\.0 .*too many connections from your address/);
  } finally {
    for (const c of held) c.close();
  }
});

Deno.test("unfinished TLS handshakes from 127.0.0.2 cannot fill the implicit-TLS port: 127.0.0.1 still submits there", async () => {
  await using relay = await startRelay({ env: TRUSTED });
  const sockets: net.Socket[] = [];
  let closed = 0;
  try {
    // 60 sockets that never start a handshake; past 50 each is closed at once.
    for (let i = 0; i < 60; i++) {
      const socket = net.connect({
        host: "127.0.0.1",
        port: relay.smtpsPort,
        localAddress: "127.0.0.2",
      });
      socket.on("error", () => {});
      socket.once("close", () => closed++);
      sockets.push(socket);
    }
    const started = performance.now();
    while (closed < 10 && performance.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(closed, 10, "exactly the 10 over the limit were closed");
    const { client, greeting } = await SmtpClient.connect({
      port: relay.smtpsPort,
      implicitTls: "unverified",
    });
    try {
      assert.equal(greeting.code, 220);
      assert.equal((await client.command("EHLO client.test")).code, 250);
      assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
      assert.equal((await client.command("RCPT TO:<user@dest.test>")).code, 250);
      assert.equal((await client.command("DATA")).code, 354);
      await client.write(taggedMessage("tls-flood") + ".\r\n");
      assert.equal((await client.reply()).code, 250);
    } finally {
      await client.quit();
    }
  } finally {
    for (const s of sockets) s.destroy();
  }
});

Deno.test("on the implicit-TLS port a trusted host is held to POSTERN_TRUSTED_MAX_CONNECTIONS and others to the per-client limit", async () => {
  await using relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_SMTP_CLIENT_CONNECTION_LIMIT: "5",
      POSTERN_TRUSTED_MAX_CONNECTIONS: "8",
    },
  });
  const sockets: net.Socket[] = [];
  const closed = new Map<string, number>();
  try {
    // Sockets that never start a handshake, counted from the accept.
    for (const [address, count] of [["127.0.0.1", 10], ["127.0.0.2", 7]] as const) {
      for (let i = 0; i < count; i++) {
        const socket = net.connect({
          host: "127.0.0.1",
          port: relay.smtpsPort,
          localAddress: address,
        });
        socket.on("error", () => {});
        socket.once("close", () => closed.set(address, (closed.get(address) ?? 0) + 1));
        sockets.push(socket);
      }
    }
    const total = () => (closed.get("127.0.0.1") ?? 0) + (closed.get("127.0.0.2") ?? 0);
    const started = performance.now();
    while (total() < 4 && performance.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      Object.fromEntries(closed),
      { "127.0.0.1": 2, "127.0.0.2": 2 },
      "the 2 over each limit were closed",
    );
  } finally {
    for (const s of sockets) s.destroy();
  }
});

Deno.test("the per-client connection rate and the total number of sessions are limited", async () => {
  await using relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_SMTP_CLIENT_CONNECTION_RATE: "10/min",
      POSTERN_SMTP_MAX_CONNECTIONS: "6",
    },
  });
  const codes: number[] = [];
  for (let i = 0; i < 12; i++) {
    const { client, greeting } = await connectFrom(relay, "127.0.0.2");
    codes.push(greeting.code);
    if (greeting.code === 421) assert.match(greeting.raw, /slow down/);
    await client.quit();
  }
  assert.deepEqual(codes, [...Array(10).fill(220), 421, 421], "ten a minute, back to back");
  await submitFromHere(relay, "rate"); // 127.0.0.1 has a rate of its own

  const held: SmtpClient[] = [];
  try {
    for (const address of ["127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5"]) {
      const { client, greeting } = await connectFrom(relay, address);
      held.push(client);
      assert.equal(greeting.code, 220);
    }
    const { client: sixth, greeting: ok } = await connectFrom(relay, "127.0.0.6");
    held.push(sixth);
    assert.equal(ok.code, 220);
    const { client: seventh, greeting: busy } = await connectFrom(relay, "127.0.0.7");
    held.push(seventh);
    assert.match(busy.raw, /^421 4\.3\.2 .*too many connections/, busy.raw);
  } finally {
    for (const c of held) c.close();
  }
});

Deno.test("an over-long command line closes the session with 421; recipients past 1000 hear 452 4.5.3", async () => {
  await using relay = await startRelay({ env: TRUSTED });
  const long = await SmtpClient.open(relay.smtpPort);
  try {
    await long.hello();
    const reply = await long.command("NOOP " + "x".repeat(3000));
    assert.match(reply.raw, /^421 4\.7\.0 .*line too long/, reply.raw);
  } finally {
    long.close();
  }
  const ok = await SmtpClient.open(relay.smtpPort);
  try {
    await ok.hello();
    assert.equal((await ok.command("NOOP " + "x".repeat(2000))).code, 250, "2048 is allowed");
  } finally {
    await ok.quit();
  }

  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
    const rcpts = Array.from({ length: 1005 }, (_, i) => `RCPT TO:<user${i}@dest.test>\r\n`);
    await client.write(rcpts.join("")); // pipelined
    const codes: string[] = [];
    for (let i = 0; i < rcpts.length; i++) codes.push((await client.reply()).raw.slice(0, 9));
    assert.equal(codes.filter((c) => c.startsWith("250")).length, 1000);
    assert.deepEqual(codes.slice(1000), Array(5).fill("452 4.5.3"));
    assert.equal((await client.command("RCPT TO:<user0@dest.test>")).code, 250, "a repeat");
    assert.equal((await client.command("DATA")).code, 354);
    await client.write(taggedMessage("many"));
    const done = await client.endData();
    assert.equal(done.code, 250, done.raw);
    const line = await relay.waitForLog((l) => l.event === "smtp.accepted");
    assert.equal(line.rcpts, 1000);
  } finally {
    await client.quit();
  }
});

Deno.test("a header section over the limit is refused with 552 5.3.4", async () => {
  await using relay = await startRelay({ env: { ...TRUSTED, POSTERN_MAX_HEADER_SIZE: "2048" } });
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    const big = taggedMessage("big").replace("\r\n\r\n", `\r\nX-Pad: ${"p".repeat(3000)}\r\n\r\n`);
    const noBlankLine = `Subject: endless\r\n${"X-Pad: yyyyyyyyyy\r\n".repeat(200)}`;
    for (const message of [big, noBlankLine]) {
      await client.beginData("app@origin.test", "user@dest.test");
      await client.write(message);
      const reply = await client.endData();
      assert.match(reply.raw, /^552 5\.3\.4 Message header exceeds/, reply.raw);
    }
    const small = taggedMessage("small").replace(
      "\r\n\r\n",
      `\r\nX-Pad: ${"p".repeat(1000)}\r\n\r\n`,
    );
    queuedId(await client.send("app@origin.test", "user@dest.test", small));
  } finally {
    await client.quit();
  }
});

Deno.test("errors in a session are slowed past the soft limit and end it at the hard limit; a delivered message starts the count again", async () => {
  await using relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_SMTP_SOFT_ERROR_LIMIT: "3",
      POSTERN_SMTP_HARD_ERROR_LIMIT: "6",
      POSTERN_SMTP_ERROR_SLEEP: "300ms",
    },
  });
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    // Three errors, then a delivered message: the count starts again.
    for (let i = 0; i < 3; i++) {
      assert.equal((await client.command("RCPT TO:<a@dest.test>")).code, 503);
    }
    queuedId(await client.send("app@origin.test", "user@dest.test", taggedMessage("reset")));
    const times: number[] = [];
    const replies: string[] = [];
    for (let i = 0; i < 6; i++) {
      const started = performance.now();
      replies.push((await client.command("RCPT TO:<a@dest.test>")).raw);
      times.push(performance.now() - started);
    }
    assert.ok(replies.every((r) => r.startsWith("503")), replies.join(" | "));
    // Errors 1-3 are answered at once; the 4th and 5th commands wait (the 6th is the last).
    assert.ok(times[4]! >= 280 && times[5]! >= 280, `reply times ${times.map(Math.round)}`);
    const closing = await client.reply();
    assert.match(closing.raw, /^421 4\.7\.0 .*too many errors/, closing.raw);
  } finally {
    client.close();
  }
});

Deno.test("idle, whole-session and DATA deadlines close slow clients with 421 4.4.2", async () => {
  await using relay = await startRelay({
    env: {
      ...TRUSTED,
      POSTERN_SMTP_IDLE_TIMEOUT: "1s",
      POSTERN_SMTP_SESSION_TIMEOUT: "6s",
      POSTERN_SMTP_MIN_DATA_RATE: "500",
    },
  });
  // Idle: says nothing after EHLO.
  const idle = await SmtpClient.open(relay.smtpPort);
  try {
    await idle.hello();
    assert.match((await idle.reply(15_000)).raw, /^421 4\.4\.2 /);
  } finally {
    idle.close();
  }
  // Slowloris with commands: a NOOP every 300 ms keeps the idle timer from firing, not the
  // session deadline.
  const chatty = await SmtpClient.open(relay.smtpPort);
  try {
    await chatty.hello();
    let last = "";
    for (let i = 0; i < 100 && !last.startsWith("421"); i++) {
      last = (await chatty.command("NOOP", 15_000)).raw;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.match(last, /^421 4\.4\.2 .*session time limit exceeded/);
  } finally {
    chatty.close();
  }
  // Slowloris in DATA: a byte every 200 ms (5 bytes/s, under the 500 bytes/s minimum).
  const trickle = await SmtpClient.open(relay.smtpPort);
  try {
    await trickle.hello();
    await trickle.beginData("app@origin.test", "user@dest.test");
    const body = new TextEncoder().encode(taggedMessage("trickle"));
    let verdict = "";
    const reading = trickle.reply(15_000).then((r) => (verdict = r.raw));
    for (const byte of body) {
      if (verdict || trickle.closed) break;
      await trickle.writeSegments([Uint8Array.of(byte)]).catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
    }
    await reading;
    assert.match(verdict, /^421 4\.4\.2 .*minimum rate/);
  } finally {
    trickle.close();
  }
  assert.equal(relay.logs.filter((l) => l.event === "smtp.accepted").length, 0);
  // A client at a normal pace is not cut: 3 KB of DATA with one pause shorter than the idle timeout.
  const normal = await SmtpClient.open(relay.smtpPort);
  try {
    await normal.hello();
    await normal.beginData("app@origin.test", "user@dest.test");
    await normal.write(taggedMessage("normal", { body: "z".repeat(1500) }));
    await new Promise((r) => setTimeout(r, 500));
    await normal.write("y".repeat(1500) + "\r\n");
    assert.equal((await normal.endData()).code, 250);
  } finally {
    await normal.quit();
  }
});

Deno.test("HTTP: body size, JSON depth and request rate per key are limited, and one key's flood leaves another key alone", async () => {
  await using relay = await startRelay({
    env: {
      POSTERN_HTTP_MAX_BODY: "2048",
      POSTERN_HTTP_MAX_JSON_DEPTH: "8",
      POSTERN_HTTP_RATE_LIMIT: "5/s",
    },
  });
  const other = await newCredential(relay);
  const url = `http://127.0.0.1:${relay.httpPort}/v1/credentials`;
  const post = (body: string, token = relay.adminToken) =>
    fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
    });
  // One second's worth, 5 requests, may come back to back: the credential, the two refusals
  // below use 3 of them, so neither can be answered 429 instead, however slowly the test runs.
  const big = await post(JSON.stringify({ name: "x".repeat(3000) }));
  assert.equal(big.status, 413, await big.text());
  const deep = await post(`{"name":"d","x":${"[".repeat(20)}${"]".repeat(20)}}`);
  assert.equal(deep.status, 400);
  assert.match((await deep.json()).error.message, /nests deeper than 8/);

  // Forty at once overrun the five, whatever is left of them.
  const burst = await Promise.all(
    Array.from({ length: 40 }, () =>
      fetch(`http://127.0.0.1:${relay.httpPort}/v1/credentials`, {
        headers: { authorization: `Bearer ${relay.adminToken}` },
      })),
  );
  const statuses = await Promise.all(burst.map(async (r) => (await r.body?.cancel(), r.status)));
  assert.ok(statuses.includes(429), `statuses ${statuses}`);
  const limited = burst.find((r) => r.status === 429)!;
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  // Another key is another bucket.
  const mine = await fetch(`http://127.0.0.1:${relay.httpPort}/v1/credentials`, {
    headers: { authorization: `Bearer ${other.password}` },
  });
  assert.equal(mine.status, 200, await mine.text());
});
