/**
 * End to end: what happens to mail after the relay accepted it. The real relay process delivers
 * to scripted sinks on loopback, found through static routes or a loopback DNS server; the HTTP
 * API shows each recipient's state. Retry schedules are short so retries happen within a test.
 */
import assert from "node:assert/strict";
import { freePort, type Relay, startRelay } from "./support/relay_process.ts";
import { type SinkOptions, startSink } from "./support/sink.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { sendTransaction, SmtpClient, type SmtpReply } from "./support/smtp_client.ts";
import {
  createCredential,
  devCertificate,
  getMessage,
  type MessageView,
  queuedId,
  waitForMessage,
  waitForStatus,
} from "./support/relay_api.ts";

const encoder = new TextEncoder();

/** Closes everything given, last first, when the test's scope ends. */
function cleanup(...items: { close?(): Promise<void>; [Symbol.asyncDispose]?(): Promise<void> }[]) {
  return {
    async [Symbol.asyncDispose]() {
      for (const item of items.reverse()) {
        if (item[Symbol.asyncDispose]) await item[Symbol.asyncDispose]!();
        else await item.close?.();
      }
    },
  };
}

/**
 * Submits one message over implicit TLS (SMTPS) with AUTH PLAIN, as an application would, and
 * returns its queue id. `data` is the message as the client writes it; it must already be
 * dot-stuffed.
 */
async function submit(
  relay: Relay,
  from: string,
  to: string[],
  data: Uint8Array | string,
): Promise<string> {
  const reply = await submitReply(relay, from, to, data);
  assert.equal(reply.code, 250, reply.raw);
  return queuedId(reply.raw);
}

/** One authenticated SMTPS transaction; the reply to the data, whatever it is. */
async function submitReply(
  relay: Relay,
  from: string,
  to: string[],
  data: Uint8Array | string,
): Promise<SmtpReply> {
  const credential = await createCredentialOnce(relay);
  const { client } = await SmtpClient.connect({
    port: relay.smtpsPort,
    implicitTls: { caCert: await devCertificate(relay) },
    replyTimeoutMs: 60_000,
  });
  try {
    await client.command("EHLO app.client.test");
    const auth = await client.command(
      `AUTH PLAIN ${btoa(`\0${credential.username}\0${credential.password}`)}`,
    );
    assert.equal(auth.code, 235, auth.raw);
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    return await sendTransaction(client, from, to, bytes);
  } finally {
    await client.quit();
  }
}

const credentials = new WeakMap<Relay, Promise<{ username: string; password: string }>>();
function createCredentialOnce(relay: Relay) {
  let credential = credentials.get(relay);
  if (!credential) {
    credential = createCredential(relay, "app");
    credentials.set(relay, credential);
  }
  return credential;
}

function simpleMessage(subject: string, body = "Hello.\r\n"): string {
  return `From: app@site.test\r\nTo: someone@dest.test\r\nSubject: ${subject}\r\n\r\n${body}`;
}

/** A sink, and a relay that sends every domain to it with a one-second retry schedule. */
async function relayToSink(sinkOptions: SinkOptions = {}, env: Record<string, string> = {}) {
  const sink = await startSink(sinkOptions);
  try {
    const relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_RETRY_SCHEDULE: "1s",
        ...env,
      },
    });
    return { relay, sink, scope: cleanup(sink, relay) };
  } catch (error) {
    await sink.close();
    throw error;
  }
}

Deno.test("a recipient answered 451 and then 250 shows deferred with the reply and next attempt, then delivered", async () => {
  const { relay, sink, scope } = await relayToSink({
    behaviors: { "later@dest.test": { code: 451, message: "4.3.0 try later" } },
  });
  await using _ = scope;

  const id = await submit(relay, "app@site.test", ["later@dest.test"], simpleMessage("retry me"));
  const deferred = await waitForStatus(relay, id, "deferred");
  const rcpt = deferred.recipients[0]!;
  assert.equal(rcpt.last_reply, "451 4.3.0 try later");
  assert.ok(rcpt.attempts >= 1);
  assert.ok(rcpt.next_attempt_at, "the next attempt time is shown");
  assert.ok(!Number.isNaN(Date.parse(rcpt.next_attempt_at)), rcpt.next_attempt_at);
  const deferredEvent = deferred.events.find((e) => e.type === "deferred")!;
  assert.equal(deferredEvent.reply, "451 4.3.0 try later");
  assert.equal(deferredEvent.recipient, "later@dest.test");
  // One second after the failed attempt, as POSTERN_RETRY_SCHEDULE=1s says.
  assert.equal(Date.parse(deferredEvent.next_attempt_at!) - Date.parse(deferredEvent.at), 1_000);

  // The server changes its mind; the retry on the schedule gets through.
  sink.setBehavior("later@dest.test", "accept");
  const delivered = await waitForStatus(relay, id, "delivered");
  const [received] = await sink.waitFor(1);
  assert.deepEqual(received!.to, ["later@dest.test"]);
  assert.equal(delivered.recipients[0]!.next_attempt_at, null);
  assert.ok(delivered.recipients[0]!.attempts >= 2);
  const types = delivered.events.map((e) => e.type);
  assert.equal(types[0], "accepted");
  assert.equal(types.at(-1), "delivered");
  assert.ok(types.includes("deferred"));
  assert.ok(types.slice(1, -1).every((t) => t === "deferred"), types.join());
  assert.ok((sink.attempts.get("later@dest.test") ?? 0) >= 2);
});

Deno.test("a recipient answered 550 5.1.1 is bounced with the reply recorded and never tried again", async () => {
  const { relay, sink, scope } = await relayToSink({
    behaviors: {
      "nobody@dest.test": { code: 550, message: "5.1.1 <nobody@dest.test>: user unknown" },
      "busy@dest.test": { code: 451, message: "4.3.0 try later" },
    },
  });
  await using _ = scope;

  const id = await submit(relay, "app@site.test", ["nobody@dest.test"], simpleMessage("bounce"));
  const bounced = await waitForStatus(relay, id, "bounced");
  const rcpt = bounced.recipients[0]!;
  assert.equal(rcpt.last_reply, "550 5.1.1 <nobody@dest.test>: user unknown");
  assert.equal(rcpt.category, "invalid_recipient");
  assert.equal(rcpt.next_attempt_at, null);
  assert.equal(rcpt.attempts, 1);
  assert.deepEqual(bounced.events.map((e) => e.type), ["accepted", "bounced"]);
  assert.equal(bounced.events[1]!.reply, "550 5.1.1 <nobody@dest.test>: user unknown");

  // Use the relay's own retry schedule as the clock: a message deferred after the bounce, to the
  // same destination, has come due and been retried, so a retry of the bounce (due earlier)
  // would have happened too.
  const witness = await submit(relay, "app@site.test", ["busy@dest.test"], simpleMessage("w"));
  await waitForMessage(relay, witness, (m) => m.recipients[0]!.attempts >= 2, 30_000);
  assert.equal(sink.attempts.get("nobody@dest.test"), 1, "the bounced recipient was tried once");
  const after = await getMessage(relay, id);
  assert.deepEqual(after.events.map((e) => e.type), ["accepted", "bounced"]);
  assert.equal(after.recipients[0]!.status, "bounced");
  // Only the DSN to app@site.test (from <>) arrived; the bounced mail itself never did.
  assert.deepEqual(sink.messages.map((m) => [m.from, m.to]), [["", ["app@site.test"]]]);
});

Deno.test("MX hosts are tried by preference and a dead first host falls through to the next", async () => {
  const sink = await startSink();
  const dns = await startDnsServer({
    mx: {
      "dest.test": [
        { exchange: "mx1.dest.test", priority: 10 },
        { exchange: "mx2.dest.test", priority: 20 },
      ],
    },
    a: { "mx1.dest.test": ["127.0.0.2"], "mx2.dest.test": ["127.0.0.1"] },
  });
  await using _dns = cleanup(dns);
  await using _sink = cleanup(sink);
  // Nothing listens on 127.0.0.2 at the sink's port, so mx1 refuses the connection.
  await using relay = await startRelay({
    env: {
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(sink.port),
      POSTERN_RETRY_SCHEDULE: "1s",
    },
  });

  const id = await submit(relay, "app@site.test", ["mx@dest.test"], simpleMessage("via mx2"));
  const view = await waitForStatus(relay, id, "delivered");
  const [received] = await sink.waitFor(1);
  assert.deepEqual(received!.to, ["mx@dest.test"]);
  const delivered = view.events.find((e) => e.type === "delivered")!;
  assert.equal(delivered.remote_host, `127.0.0.1:${sink.port}`);
  assert.deepEqual(
    view.events.map((e) => e.type),
    ["accepted", "delivered"],
    "the dead host cost no deferral: the next MX was tried in the same attempt",
  );
  assert.ok(dns.queries.some((q) => q.name === "dest.test" && q.type === "MX"));
  assert.ok(dns.queries.some((q) => q.name === "mx1.dest.test" && q.type === "A"));
  assert.ok(dns.queries.some((q) => q.name === "mx2.dest.test" && q.type === "A"));
  const connectFailed = relay.logs.find((line) => line.event === "delivery.connect_failed");
  assert.ok(connectFailed, "the relay tried mx1 first");
  assert.match(String(connectFailed.error), /127\.0\.0\.2/);
});

Deno.test("a domain without MX records gets its mail at its A record", async () => {
  const sink = await startSink();
  const dns = await startDnsServer({ a: { "nomx.test": ["127.0.0.1"] } });
  await using _dns = cleanup(dns);
  await using _sink = cleanup(sink);
  await using relay = await startRelay({
    env: { POSTERN_DNS: `127.0.0.1:${dns.port}`, POSTERN_MX_PORT: String(sink.port) },
  });

  const id = await submit(relay, "app@site.test", ["a@nomx.test"], simpleMessage("implicit mx"));
  const view = await waitForStatus(relay, id, "delivered");
  const [received] = await sink.waitFor(1);
  assert.deepEqual(received!.to, ["a@nomx.test"]);
  assert.equal(view.events.at(-1)!.remote_host, `127.0.0.1:${sink.port}`);
  assert.ok(dns.queries.some((q) => q.name === "nomx.test" && q.type === "MX"));
  assert.ok(dns.queries.some((q) => q.name === "nomx.test" && q.type === "A"));
});

Deno.test("several messages to one destination share connections", async () => {
  const sink = await startSink();
  await using _sink = cleanup(sink);
  const deadPort = await freePort();
  const count = 6;
  // First the destination is down, so the messages pile up in the queue...
  const first = await startRelay({
    env: {
      POSTERN_ROUTES: `dest.test=127.0.0.1:${deadPort}`,
      POSTERN_RETRY_SCHEDULE: "1s",
      POSTERN_CONNECTION_LIMIT: "2",
    },
  });
  await using _first = cleanup(first);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(
      await submit(first, "app@site.test", [`user${i}@dest.test`], simpleMessage(`batch ${i}`)),
    );
  }
  const views: MessageView[] = [];
  for (const id of ids) views.push(await waitForStatus(first, id, "deferred"));
  assert.match(views[0]!.recipients[0]!.last_reply ?? "", /ECONNREFUSED|refused/i);

  // ...then it comes back (the route now names the live sink) with all of them due at once.
  await first.stop();
  const lastDue = Math.max(
    ...views.map((v) => Date.parse(v.recipients[0]!.next_attempt_at!)),
  );
  while (Date.now() <= lastDue) {
    await new Promise((resolve) => setTimeout(resolve, lastDue - Date.now() + 10));
  }
  await using relay = await first.restart({ POSTERN_ROUTES: `dest.test=127.0.0.1:${sink.port}` });

  const messages = await sink.waitFor(count);
  for (const id of ids) await waitForStatus(relay, id, "delivered");
  assert.equal(messages.length, count);
  assert.ok(
    sink.connections < count,
    `${count} messages came over ${sink.connections} connections`,
  );
  assert.ok(sink.connections <= 2, "no more connections than POSTERN_CONNECTION_LIMIT");
});

Deno.test("a message to recipients at two domains is delivered to each domain's server", async () => {
  const alpha = await startSink({ name: "mx.alpha.test" });
  const beta = await startSink({ name: "mx.beta.test" });
  await using _sinks = cleanup(alpha, beta);
  await using relay = await startRelay({
    env: { POSTERN_ROUTES: `alpha.test=127.0.0.1:${alpha.port},beta.test=127.0.0.1:${beta.port}` },
  });

  const id = await submit(
    relay,
    "app@site.test",
    ["x@alpha.test", "y@alpha.test", "z@beta.test"],
    simpleMessage("two domains", "One message, two destinations.\r\n"),
  );
  const view = await waitForStatus(relay, id, "delivered");
  const [atAlpha] = await alpha.waitFor(1);
  const [atBeta] = await beta.waitFor(1);
  assert.deepEqual(atAlpha!.to.sort(), ["x@alpha.test", "y@alpha.test"]);
  assert.deepEqual(atBeta!.to, ["z@beta.test"]);
  for (const received of [atAlpha!, atBeta!]) {
    assert.match(received.text, /\r\nSubject: two domains\r\n/);
    assert.match(received.text, /\r\n\r\nOne message, two destinations\.\r\n$/);
  }
  assert.deepEqual(view.recipients.map((r) => [r.address, r.status]), [
    ["x@alpha.test", "delivered"],
    ["y@alpha.test", "delivered"],
    ["z@beta.test", "delivered"],
  ]);
  assert.equal(view.events.filter((e) => e.type === "delivered").length, 3);
});

Deno.test("outbound mail has CRLF line endings, intact leading dots, and Message-ID and Date added only when missing", async () => {
  const { relay, sink, scope } = await relayToSink();
  await using _ = scope;

  // Bare LF line endings, as many scripts write them. Over SMTP they are refused (SMTP
  // smuggling: tests/smuggling_test.ts); a raw upload over HTTP is repaired to CRLF. Lines
  // starting with "." are dot-stuffed on the wire (RFC 5321 §4.5.2) and arrive intact.
  const bareLf = "From: app@site.test\nTo: lf@dest.test\nSubject: bare LF\n\n" +
    "first line\n.leading dot\n.\n..two dots\nmiddle . line\n.\n\nlast line\r\n";
  const refused = await submitReply(relay, "app@site.test", ["lf@dest.test"], bareLf);
  assert.match(refused.raw, /^550 5\.5\.2 /);
  const upload = await fetch(
    `http://127.0.0.1:${relay.httpPort}/v1/messages?from=app@site.test&to=lf@dest.test`,
    {
      method: "POST",
      headers: { authorization: `Bearer ${relay.adminToken}`, "content-type": "message/rfc822" },
      body: bareLf,
    },
  );
  assert.equal(upload.status, 202);
  const idA: string = (await upload.json()).id;
  const kept = "From: app@site.test\r\nTo: kept@dest.test\r\nSubject: has ids\r\n" +
    "Message-ID: <keep-me.42@client.test>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0200\r\n\r\nbody\r\n";
  const idB = await submit(relay, "app@site.test", ["kept@dest.test"], kept);

  const messages = await sink.waitFor(2);
  const lf = messages.find((m) => m.to[0] === "lf@dest.test")!;
  const withIds = messages.find((m) => m.to[0] === "kept@dest.test")!;

  const raw = lf.text;
  assert.ok(!/[^\r]\n/.test(raw) && !raw.startsWith("\n"), "no bare LF arrives");
  assert.ok(!/\r(?!\n)/.test(raw), "no bare CR arrives");
  const body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
  assert.equal(
    body,
    "first line\r\n.leading dot\r\n.\r\n..two dots\r\nmiddle . line\r\n.\r\n\r\nlast line\r\n",
  );
  const messageId = /^Message-ID: (.*)$/im.exec(lf.headers)?.[1];
  assert.ok(messageId, `a Message-ID was added: ${lf.headers}`);
  assert.match(messageId, /^<[0-9a-z]{26}@relay\.test>$/);
  const date = /^Date: (.*)$/im.exec(lf.headers)?.[1];
  assert.ok(date, `a Date was added: ${lf.headers}`);
  assert.ok(Math.abs(Date.parse(date) - Date.now()) < 10 * 60_000, `a current date: ${date}`);
  assert.equal((await getMessage(relay, idA)).message_id, messageId);

  assert.deepEqual(
    withIds.headers.split("\r\n").filter((line) => /^(message-id|date):/i.test(line)),
    ["Message-ID: <keep-me.42@client.test>", "Date: Tue, 1 Jul 2025 10:00:00 +0200"],
  );
  assert.equal((await getMessage(relay, idB)).message_id, "<keep-me.42@client.test>");
  await waitForStatus(relay, idA, "delivered");
  await waitForStatus(relay, idB, "delivered");
});

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes after the header block's blank line. */
function bodyOf(raw: Uint8Array): Uint8Array {
  for (let i = 0; i + 3 < raw.length; i++) {
    if (raw[i] === 13 && raw[i + 1] === 10 && raw[i + 2] === 13 && raw[i + 3] === 10) {
      return raw.subarray(i + 4);
    }
  }
  throw new Error("Cannot find the end of the header block");
}

Deno.test("a 20 MB message arrives with a byte-identical body", async () => {
  const { relay, sink, scope } = await relayToSink();
  await using _ = scope;

  // 20 MB of base64 text in 76-character lines, with dot-led lines mixed in, as a big
  // attachment would travel.
  const random = new Uint8Array(15 * 1024 * 1024);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, Math.min(i + 65536, random.length)));
  }
  let base64 = "";
  for (let i = 0; i < random.length; i += 49152) {
    base64 += btoa(String.fromCharCode(...random.subarray(i, i + 49152)));
  }
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 76) {
    lines.push((i / 76) % 1000 === 0 ? "." + base64.slice(i, i + 75) : base64.slice(i, i + 76));
  }
  const body = encoder.encode(lines.join("\r\n") + "\r\n");
  assert.ok(body.length >= 20 * 1024 * 1024, `${body.length} bytes`);
  const header = encoder.encode(
    "From: app@site.test\r\nTo: big@dest.test\r\nSubject: 20 MB\r\n" +
      "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
  );
  // Dot-stuff for the wire: a line starting with "." gets one more.
  const wire = encoder.encode(
    new TextDecoder().decode(body).replaceAll("\r\n.", "\r\n..").replace(/^\./, ".."),
  );
  const data = new Uint8Array(header.length + wire.length);
  data.set(header);
  data.set(wire, header.length);

  const id = await submit(relay, "app@site.test", ["big@dest.test"], data);
  const [received] = await sink.waitFor(1, { timeoutMs: 45_000 });
  const arrived = bodyOf(received!.raw);
  assert.equal(arrived.length, body.length);
  assert.equal(await sha256Hex(arrived), await sha256Hex(body));
  const view = await waitForStatus(relay, id, "delivered");
  assert.ok(view.size >= body.length);
});

/** Files left in the relay's body spool (large bodies beside the KV file). */
async function spooledBodies(relay: Relay): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${relay.dataDir}/postern.kv-bodies`)) names.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names;
}

/** Resolves once the body spool is empty (watched, not polled), or after `timeoutMs`. */
async function spoolEmptied(relay: Relay, timeoutMs: number) {
  using watcher = Deno.watchFs(`${relay.dataDir}/postern.kv-bodies`);
  const timer = setTimeout(() => watcher.close(), timeoutMs);
  try {
    if ((await spooledBodies(relay)).length === 0) return;
    for await (const _ of watcher) if ((await spooledBodies(relay)).length === 0) return;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a 10 MB message at the size limit waits out a deferral, arrives byte-exact and leaves no body file; one byte more hears 552", async () => {
  const header = encoder.encode(
    "From: app@site.test\r\nTo: big@dest.test\r\nSubject: 10 MB\r\n" +
      "Content-Type: application/octet-stream\r\n\r\n",
  );
  // 10 MB of printable lines, some led by a dot, so dot-stuffing is exercised both ways.
  const line = (n: number) => (n % 997 === 0 ? "." : "x") + `${n}`.padStart(76, "=") + "\r\n";
  const parts: string[] = [];
  let length = header.length;
  for (let n = 0; length < 10 * 1024 * 1024; n++) {
    parts.push(line(n));
    length += parts.at(-1)!.length;
  }
  const body = encoder.encode(parts.join(""));
  const limit = header.length + body.length;
  const wire = (extra: string) => {
    const stuffed = encoder.encode(
      parts.join("").replaceAll("\r\n.", "\r\n..").replace(/^\./, ".."),
    );
    const tail = encoder.encode(extra);
    const out = new Uint8Array(header.length + stuffed.length + tail.length);
    out.set(header);
    out.set(stuffed, header.length);
    out.set(tail, header.length + stuffed.length);
    return out;
  };

  // The first attempt hears 451 and the next is an hour away: the message waits in the queue
  // until an operator's retry sends it.
  const sink = await startSink({
    behaviors: {
      "big@dest.test": { sequence: [{ code: 451, message: "4.3.0 Not now" }, "accept"] },
    },
  });
  await using _sink = cleanup(sink);
  await using relay = await startRelay({
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_RETRY_SCHEDULE: "1h",
      POSTERN_MAX_MESSAGE_SIZE: String(limit),
    },
  });

  const over = await submitReply(relay, "app@site.test", ["big@dest.test"], wire("y\r\n"));
  assert.equal(over.code, 552, over.raw);
  assert.match(over.raw, /5\.3\.4/);

  const id = await submit(relay, "app@site.test", ["big@dest.test"], wire(""));
  await waitForStatus(relay, id, "deferred", 60_000);
  // Its body waits beside the store (the refused one left nothing there).
  assert.equal((await spooledBodies(relay)).length, 1);
  const retried = await relay.api("/v1/queue/dest.test/retry", { method: "POST" });
  assert.equal(retried.status, 200, JSON.stringify(retried.json));

  const [received] = await sink.waitFor(1, { timeoutMs: 60_000 });
  const arrived = bodyOf(received!.raw);
  assert.equal(arrived.length, body.length);
  assert.equal(await sha256Hex(arrived), await sha256Hex(body));
  const view = await waitForStatus(relay, id, "delivered");
  assert.ok(view.size >= limit, `${view.size}`);
  // The body's file goes once its last recipient is final.
  await spoolEmptied(relay, 20_000);
  assert.deepEqual(await spooledBodies(relay), []);
});
