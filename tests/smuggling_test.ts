/**
 * SMTP smuggling, end to end against the relay process: a bare CR, bare LF or NUL in DATA is
 * refused with 550 5.5.2 (Postfix's smtpd_forbid_bare_newline = reject), trusted client or not;
 * no malformed end of data ends DATA or lets a second, smuggled transaction through, however
 * the bytes are cut into TCP segments; and what leaves for the next hop has only CRLF line
 * endings and correct dot-stuffing.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { queuedId, SmtpClient } from "./support/smtp_client.ts";
import { newCredential, session } from "./support/tenants.ts";
import { segmentations } from "./support/segments.ts";
import { startRawMx, unstuff } from "./support/raw_mx.ts";
import { taggedMessage } from "./support/operations.ts";

const encoder = new TextEncoder();

/** End-of-data look-alikes that a lenient receiver (or the next hop) might honour. */
const FAKE_ENDS = ["\n.\n", "\r.\r", "\n.\r\n", "\r.\n", "\r\n.\r", "\r\n.\n"];

interface Env {
  relay: Relay;
  sink: Sink;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startEnv(): Promise<Env> {
  const sink = await startSink();
  try {
    const relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
        POSTERN_RETRY_SCHEDULE: "1s",
        POSTERN_POLL_INTERVAL: "200ms",
      },
    });
    return {
      relay,
      sink,
      async [Symbol.asyncDispose]() {
        await relay[Symbol.asyncDispose]();
        await sink.close();
      },
    };
  } catch (error) {
    await sink.close();
    throw error;
  }
}

function accepted(relay: Relay): number {
  return relay.logs.filter((line) => line.event === "smtp.accepted").length;
}

/** A message whose body holds `bad` between two ordinary lines. */
function messageWith(bad: string): string {
  return `From: app@origin.test\r\nTo: user@dest.test\r\nSubject: bad\r\n\r\nfirst${bad}second\r\n`;
}

/**
 * The classic smuggling payload: a message, a fake end, then a whole second transaction for a
 * recipient the test can look for at the sink, then the real end.
 */
function smugglingPayload(fakeEnd: string, nul: boolean): Uint8Array {
  return encoder.encode(
    "From: app@origin.test\r\nTo: user@dest.test\r\nSubject: carrier\r\n\r\nhello" +
      (nul ? "\0" : "") + fakeEnd +
      "MAIL FROM:<evil@origin.test>\r\nRCPT TO:<smuggled@dest.test>\r\nDATA\r\n" +
      "From: evil@origin.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n",
  );
}

/** Sends a clean message and waits until the sink has it: the pipeline is flushed up to here. */
async function flushWithMarker(env: Env, expectedAtSink: number): Promise<void> {
  const client = await SmtpClient.open(env.relay.smtpPort);
  try {
    await client.hello();
    queuedId(await client.send("app@origin.test", "marker@dest.test", taggedMessage("marker")));
  } finally {
    await client.quit();
  }
  await env.sink.waitFor(expectedAtSink);
}

Deno.test("a bare LF, bare CR or NUL in DATA is refused with 550 5.5.2, from a trusted client and from an authenticated one", async () => {
  await using env = await startEnv();
  const bad: Array<[string, string]> = [
    ["bare LF", "\n"],
    ["bare CR", "\r"],
    ["NUL", "\0"],
    ["bare LF after a CR-less header", "\nX-Injected: 1\n"],
  ];
  const trusted = await SmtpClient.open(env.relay.smtpPort);
  try {
    await trusted.hello();
    for (const [name, bytes] of bad) {
      await trusted.beginData("app@origin.test", "user@dest.test");
      await trusted.write(messageWith(bytes));
      const reply = await trusted.endData();
      assert.match(reply.raw, /^550 5\.5\.2 /, `trusted, ${name}: ${reply.raw}`);
    }
  } finally {
    await trusted.quit();
  }

  const credential = await newCredential(env.relay);
  const client = await session(env.relay, credential);
  try {
    for (const [name, bytes] of bad) {
      assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
      assert.equal((await client.command("RCPT TO:<user@dest.test>")).code, 250);
      assert.equal((await client.command("DATA")).code, 354);
      await client.write(encoder.encode(messageWith(bytes) + ".\r\n"));
      const reply = await client.reply();
      assert.match(reply.raw, /^550 5\.5\.2 /, `authenticated, ${name}: ${reply.raw}`);
    }
  } finally {
    await client.quit();
  }
  assert.equal(accepted(env.relay), 0, "nothing was queued");
  await flushWithMarker(env, 1);
  assert.equal(env.sink.messages.length, 1, "only the marker arrived");
});

Deno.test("no malformed end of data ends DATA or lets a smuggled transaction through, whole, byte by byte or in random pieces", async () => {
  await using env = await startEnv();
  let sessions = 0;
  for (const fakeEnd of FAKE_ENDS) {
    // A session per look-alike: each refusal counts as an error, and 20 close the session.
    const client = await SmtpClient.open(env.relay.smtpPort);
    try {
      await client.hello();
      for (const nul of [false, true]) {
        for (const split of segmentations(2, 1000 + sessions)) {
          const what = `${JSON.stringify(fakeEnd)}${nul ? " with NUL" : ""} ${split.name}`;
          await client.beginData("app@origin.test", "user@dest.test");
          await client.writeSegments(split.cut(smugglingPayload(fakeEnd, nul)));
          const verdict = await client.reply();
          assert.match(verdict.raw, /^550 5\.5\.2 /, `${what}: ${verdict.raw}`);
          // Had the smuggled MAIL, RCPT or DATA run as commands, their replies would come next.
          const noop = await client.command("NOOP");
          assert.equal(noop.raw, "250 2.0.0 OK", `${what}: a smuggled command ran: ${noop.raw}`);
          sessions++;
        }
      }
    } finally {
      await client.quit();
    }
  }
  assert.equal(sessions, FAKE_ENDS.length * 2 * 4);
  assert.equal(accepted(env.relay), 0, "neither the carrier nor the smuggled message was queued");
  await flushWithMarker(env, 1);
  assert.equal(env.sink.messages.length, 1);
  assert.equal(env.sink.attempts.get("smuggled@dest.test"), undefined, "never tried at the sink");
});

Deno.test("an authenticated client over TLS cannot smuggle either, even byte by byte", async () => {
  await using env = await startEnv();
  const credential = await newCredential(env.relay);
  const client = await session(env.relay, credential);
  try {
    for (const fakeEnd of FAKE_ENDS) {
      for (const split of segmentations(1, 77).slice(0, 2)) {
        assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
        assert.equal((await client.command("RCPT TO:<user@dest.test>")).code, 250);
        assert.equal((await client.command("DATA")).code, 354);
        for (const piece of split.cut(smugglingPayload(fakeEnd, false))) await client.write(piece);
        const verdict = await client.reply();
        assert.match(verdict.raw, /^550 5\.5\.2 /, `${JSON.stringify(fakeEnd)} ${split.name}`);
        assert.equal((await client.command("NOOP")).raw, "250 2.0.0 OK");
      }
    }
  } finally {
    await client.quit();
  }
  assert.equal(accepted(env.relay), 0);
  await flushWithMarker(env, 1);
  assert.equal(env.sink.attempts.get("smuggled@dest.test"), undefined);
});

Deno.test("what the relay sends on has only CRLF line endings and dot-stuffed lines, for SMTP and for HTTP raw uploads that it normalises", async () => {
  const mx = await startRawMx({ starttls: false });
  try {
    await using relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${mx.port}`,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
        POSTERN_RETRY_SCHEDULE: "1s",
        POSTERN_POLL_INTERVAL: "200ms",
      },
    });
    // Over SMTP: lines that need stuffing, sent stuffed (the relay unstuffs, then stuffs again).
    const lines = [".", "..", ".hidden", "trailing.", " .", "...", "MAIL FROM:<x@y.test>", "."];
    const client = await SmtpClient.open(relay.smtpPort);
    try {
      await client.hello();
      await client.beginData("app@origin.test", "user@dest.test");
      await client.write(
        "From: app@origin.test\r\nTo: user@dest.test\r\nSubject: dots\r\n\r\n" +
          lines.map((l) => (l.startsWith(".") ? "." + l : l) + "\r\n").join(""),
      );
      queuedId(await client.endData());
    } finally {
      await client.quit();
    }
    // Over HTTP as message/rfc822: bare LF and CR, and end-of-data look-alikes, are normalised.
    const raw = "From: app@origin.test\nTo: user@dest.test\nSubject: raw\n\nline\n.\nafter\r.\r" +
      "x\r\n.\nlast";
    const res = await fetch(
      `http://127.0.0.1:${relay.httpPort}/v1/messages?from=app@origin.test&to=user@dest.test`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${relay.adminToken}`, "content-type": "message/rfc822" },
        body: raw,
      },
    );
    assert.equal(res.status, 202, await res.text());

    const received = await mx.waitFor(2);
    const bodies: Record<string, string> = {
      dots: lines.map((l) => l + "\r\n").join(""),
      raw: "line\r\n.\r\nafter\r\n.\r\nx\r\n.\r\nlast\r\n",
    };
    for (const tx of received) {
      const wire = new TextDecoder("latin1").decode(tx.wire);
      assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(wire), `a bare CR or LF on the wire: ${wire}`);
      assert.ok(wire.endsWith("\r\n.\r\n"));
      assert.equal(wire.indexOf("\r\n.\r\n"), wire.length - 5, "the only end of data is the last");
      for (const line of wire.slice(0, -5).split("\r\n")) {
        assert.ok(!line.startsWith(".") || line.startsWith(".."), `unstuffed line ${line}`);
      }
      const text = new TextDecoder("latin1").decode(unstuff(tx.wire));
      const subject = /^Subject: (\S+)/m.exec(text)![1]!;
      assert.equal(text.slice(text.indexOf("\r\n\r\n") + 4), bodies[subject], subject);
    }
  } finally {
    await mx.close();
  }
});

Deno.test("a command line ending in a bare LF is refused with 550 5.5.2 and the session ends", async () => {
  await using env = await startEnv();
  const client = await SmtpClient.open(env.relay.smtpPort);
  try {
    await client.hello();
    // Pipelined: a proper MAIL line, then a RCPT line that ends in a bare LF, then more.
    await client.write(
      "MAIL FROM:<app@origin.test>\r\nRCPT TO:<user@dest.test>\nDATA\r\n",
    );
    assert.equal((await client.reply()).code, 250);
    const refused = await client.reply();
    assert.equal(refused.code, 550);
    assert.match(refused.raw, /5\.5\.2 .*bare <LF>/);
  } finally {
    client.close();
  }
  // Nothing from that session was queued; the next client is served as usual.
  assert.equal(accepted(env.relay), 0);
  const next = await SmtpClient.open(env.relay.smtpPort);
  try {
    await next.hello();
    queuedId(await next.send("app@origin.test", "user@dest.test", taggedMessage("after")));
  } finally {
    next.close();
  }
});
