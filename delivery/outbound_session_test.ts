/**
 * What the outbound side puts on the wire, seen by a raw-socket MX: only CRLF line endings and
 * correct dot-stuffing (RFC 5321 §4.5.2), whatever bytes the body holds, so no next hop can read
 * an end of data we did not send (SMTP smuggling, outbound).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { OutboundSession } from "./outbound_session.ts";
import { crlfNormalizer } from "../core/mail/line_endings.ts";
import { startRawMx, unstuff } from "../tests/support/raw_mx.ts";
import { startSink } from "../tests/support/sink.ts";

const bodyBytes = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(13, 10, 46, 46, 0x20) },
    { weight: 2, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  ),
  { minLength: 1, maxLength: 120 },
).map((a) => Uint8Array.from(a));

/** What a receiver must read back: the body with every line break made CRLF, ending in CRLF. */
function expected(body: Uint8Array): Uint8Array {
  const normalize = crlfNormalizer();
  const a = normalize(body);
  const b = normalize(new Uint8Array(0), true);
  const text = new TextDecoder("latin1").decode(Uint8Array.from([...a, ...b]));
  const ended = text.endsWith("\r\n") ? text : text + "\r\n";
  return Uint8Array.from(ended, (c) => c.charCodeAt(0));
}

const QUICK_TIMEOUTS = {
  greetingMs: 10_000,
  commandMs: 10_000,
  mailMs: 10_000,
  rcptMs: 10_000,
  dataMs: 10_000,
  dataBlockMs: 10_000,
  dataDoneMs: 10_000,
};

Deno.test("the outbound session sends only CRLF and dot-stuffs every line, for any body", async () => {
  const mx = await startRawMx({ starttls: false });
  const session = await OutboundSession.open({ host: "127.0.0.1", port: mx.port }, {
    heloName: "relay.test",
    connectTimeoutMs: 5_000,
    timeouts: QUICK_TIMEOUTS,
    requireTls: false,
  });
  try {
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(bodyBytes, fc.boolean(), async (body, streamed) => {
        const source = streamed
          ? (async function* () {
            // Split across chunks, so a CR and its LF may arrive apart.
            for (let i = 0; i < body.length; i += 7) yield body.subarray(i, i + 7);
          })()
          : body;
        const outcome = await session.send("a@origin.test", ["b@dest.test"], source, body.length);
        assert.equal(outcome[0]!.kind, "success", outcome[0]!.reply);
        sent++;
        const [tx] = (await mx.waitFor(sent)).slice(-1);
        const wire = tx!.wire;
        const text = new TextDecoder("latin1").decode(wire);
        assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), `a bare CR or LF: ${JSON.stringify(text)}`);
        assert.deepEqual(unstuff(wire), expected(body));
        assert.ok(await session.reset());
      }),
      { numRuns: 60 },
    );
  } finally {
    session.close();
    await mx.close();
  }
});

Deno.test("a pipelined RCPT that gets no reply is given up after the RCPT timeout, not the longer MAIL one", async () => {
  const sink = await startSink({ behaviors: { "stuck@dest.test": "hang" } });
  const minute = 60_000;
  const session = await OutboundSession.open({ host: "127.0.0.1", port: sink.port }, {
    heloName: "relay.test",
    connectTimeoutMs: 5_000,
    timeouts: {
      greetingMs: minute,
      commandMs: minute,
      mailMs: minute,
      rcptMs: 1_000,
      dataMs: minute,
      dataBlockMs: minute,
      dataDoneMs: minute,
    },
    requireTls: false,
  });
  try {
    const started = performance.now();
    const [outcome] = await session.send(
      "a@origin.test",
      ["stuck@dest.test"],
      new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n"),
      24,
    );
    const waited = performance.now() - started;
    assert.equal(outcome!.kind, "transient", outcome!.reply);
    assert.ok(waited >= 900 && waited < 30_000, `given up after ${Math.round(waited)} ms`);
  } finally {
    await session.close();
    await sink.close();
  }
});

Deno.test("a connection reused right after a delivered message sends no RSET; one idle for a while does", async () => {
  const mx = await startRawMx({ starttls: false });
  let now = 0;
  const session = await OutboundSession.open({ host: "127.0.0.1", port: mx.port }, {
    heloName: "relay.test",
    connectTimeoutMs: 5_000,
    timeouts: QUICK_TIMEOUTS,
    requireTls: false,
    now: () => now,
  });
  try {
    const body = new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n");
    const send = async () => {
      const [outcome] = await session.send("a@origin.test", ["b@dest.test"], body, body.length);
      assert.equal(outcome!.kind, "success", outcome!.reply);
    };
    await send();
    now += 10;
    assert.ok(await session.reset());
    await send();
    now += 60_000;
    assert.ok(await session.reset());
    await send();
    const verbs = mx.sessions[0]!.map((line) => line.split(" ")[0]);
    assert.deepEqual(verbs, [
      "EHLO",
      "MAIL",
      "RCPT",
      "DATA",
      "MAIL",
      "RCPT",
      "DATA",
      "RSET",
      "MAIL",
      "RCPT",
      "DATA",
    ]);
  } finally {
    await session.close();
    await mx.close();
  }
});

Deno.test("small and large bodies both arrive whole, whichever way they are written", async () => {
  const mx = await startRawMx({ starttls: false });
  const session = await OutboundSession.open({ host: "127.0.0.1", port: mx.port }, {
    heloName: "relay.test",
    connectTimeoutMs: 5_000,
    timeouts: QUICK_TIMEOUTS,
    requireTls: false,
  });
  try {
    const line = "x".repeat(76) + "\r\n";
    for (const [i, size] of [100, 16_000, 300_000].entries()) {
      const text = `Subject: ${size}\r\n\r\n` + line.repeat(Math.ceil(size / line.length));
      const body = new TextEncoder().encode(text);
      const [outcome] = await session.send("a@origin.test", ["b@dest.test"], body, body.length);
      assert.equal(outcome!.kind, "success", outcome!.reply);
      const [tx] = (await mx.waitFor(i + 1)).slice(-1);
      assert.equal(new TextDecoder().decode(unstuff(tx!.wire)), text);
      assert.ok(await session.reset());
    }
  } finally {
    await session.close();
    await mx.close();
  }
});
