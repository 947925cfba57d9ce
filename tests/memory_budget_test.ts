/**
 * The memory budget under the attacks of issue 11, scaled down with the budget: parallel SMTP
 * submissions held before their final dot, and parallel JSON sends too large to queue. The
 * relay's peak resident memory (VmHWM) grows by less than the budget plus a fixed margin, the
 * attacker hears 452 4.3.1 / 503 with Retry-After, and another client's small message still
 * goes through.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { procStatusBytes } from "./support/operations.ts";

const MB = 1024 * 1024;
/** What the relay may grow by beyond its budget: KV, stream buffers, garbage not yet collected. */
const MARGIN = 96 * MB;
const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

/** About `size` bytes of whole 76-character lines, each ending in CRLF (no "." to stuff). */
function lines(size: number): Uint8Array {
  const line = new TextEncoder().encode("A".repeat(76) + "\r\n");
  const out = new Uint8Array(Math.floor(size / line.length) * line.length);
  for (let o = 0; o < out.length; o += line.length) out.set(line, o);
  return out;
}

async function smtpFrom(relay: Relay, localAddress: string): Promise<SmtpClient> {
  const { client, greeting } = await SmtpClient.connect({
    port: relay.smtpPort,
    localAddress,
    // The held uploads are written to the store as they arrive: on a loaded machine the final
    // dot may wait for the last of them.
    replyTimeoutMs: 120_000,
  });
  assert.equal(greeting.code, 220, greeting.raw);
  assert.equal((await client.command("EHLO client.test")).code, 250);
  return client;
}

/** A POST over node:net from `localAddress` (fetch cannot choose one): status and body. */
function postFrom(
  relay: Relay,
  localAddress: string,
  path: string,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: relay.httpPort, localAddress }, () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer ${relay.adminToken}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          "Connection: close\r\n\r\n" + body,
      );
    });
    let text = "";
    socket.on("data", (d: Buffer) => text += d.toString("latin1"));
    socket.on("error", reject);
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, text });
    });
  });
}

Deno.test("SMTP: six submissions held before the dot stay within the memory budget; the attacker's next transactions hear 452 4.3.1 and another client still sends", async () => {
  const BUDGET = 8 * MB;
  const HELD = 6;
  const EACH = 12 * MB;
  await using relay = await startRelay({
    env: {
      POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8",
      POSTERN_ROUTES: "*=127.0.0.1:9",
      POSTERN_RETRY_SCHEDULE: "1h",
      POSTERN_MEMORY_BUDGET: String(BUDGET),
      POSTERN_MEMORY_BUDGET_PER_CLIENT: String(1 * MB),
    },
  });
  // Warm up every path a submission takes, so the baseline includes them.
  const warm = await smtpFrom(relay, "127.0.0.1");
  await warm.command("MAIL FROM:<app@origin.test>");
  await warm.command("RCPT TO:<user@dest.test>");
  await warm.command("DATA");
  assert.equal((await warm.command("Subject: warm\r\n\r\nhello\r\n.")).code, 250);
  const before = await procStatusBytes(relay.pid, "VmHWM");

  const body = lines(EACH);
  const held: SmtpClient[] = [];
  for (let i = 0; i < HELD; i++) {
    const c = await smtpFrom(relay, "127.0.0.2");
    assert.equal((await c.command("MAIL FROM:<app@origin.test>")).code, 250);
    assert.equal((await c.command("RCPT TO:<user@dest.test>")).code, 250);
    assert.equal((await c.command("DATA")).code, 354);
    held.push(c);
  }
  // All six upload at once, and stop before the final dot.
  await Promise.all(held.map(async (c) => {
    await c.write("Subject: held\r\n\r\n");
    for (let o = 0; o < body.length; o += MB) await c.write(body.subarray(o, o + MB));
  }));

  // The attacker's share is spent: more transactions from it are refused at MAIL FROM.
  const more: SmtpClient[] = [];
  let refusal = "";
  for (let i = 0; i < 30 && !refusal; i++) {
    const c = await smtpFrom(relay, "127.0.0.2");
    more.push(c);
    const reply = await c.command("MAIL FROM:<app@origin.test>");
    if (reply.code !== 250) refusal = reply.raw;
  }
  assert.match(refusal, /^452 4\.3\.1 /);

  // Another client still submits while all that is held.
  const other = await smtpFrom(relay, "127.0.0.3");
  assert.equal((await other.command("MAIL FROM:<app@origin.test>")).code, 250);
  assert.equal((await other.command("RCPT TO:<user@dest.test>")).code, 250);
  assert.equal((await other.command("DATA")).code, 354);
  const small = await other.command("Subject: small\r\n\r\nhello\r\n.");
  assert.match(small.raw, /^250 /);

  // The held submissions, streamed to the store, are accepted whole at their dot.
  const t0 = performance.now();
  const ends = await Promise.all(held.map((c) => c.command(".")));
  console.log(`the dots were answered after ${Math.round(performance.now() - t0)} ms`);
  for (const end of ends) assert.match(end.raw, /^250 /);
  const after = await procStatusBytes(relay.pid, "VmHWM");
  console.log(
    `SMTP: ${HELD} x ${mb(EACH)} held; VmHWM ${mb(before)} -> ${mb(after)} ` +
      `(+${mb(after - before)}), budget ${mb(BUDGET)} + margin ${mb(MARGIN)}`,
  );
  assert.ok(after - before <= BUDGET + MARGIN, `grew by ${mb(after - before)}`);
  for (const c of [warm, ...held, ...more, other]) await c.quit();
});

Deno.test("HTTP: parallel oversize JSON sends stay within the memory budget; the attacker hears 503 with Retry-After and another client's send is queued", async () => {
  const BUDGET = 64 * MB;
  const MAX_MESSAGE = 6 * MB;
  const ATTACKS = 8;
  await using relay = await startRelay({
    env: {
      POSTERN_ROUTES: "*=127.0.0.1:9",
      POSTERN_RETRY_SCHEDULE: "1h",
      POSTERN_MAX_MESSAGE_SIZE: String(MAX_MESSAGE),
      POSTERN_MEMORY_BUDGET: String(BUDGET),
      // Room for one such send from a client at a time (a JSON send counts 5 times its size).
      POSTERN_MEMORY_BUDGET_PER_CLIENT: String(48 * MB),
    },
  });
  const warm = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to: "user@dest.test", text: "warm" },
  });
  assert.equal(warm.status, 202, JSON.stringify(warm.json));
  const before = await procStatusBytes(relay.pid, "VmHWM");

  // Just under the JSON limit for a send (4/3 of the message size, plus 1 MB), and decoding to
  // more than the message size: each would end in 413 after being read.
  const attachment = Buffer.alloc(Math.floor(MAX_MESSAGE * 1.05), 7).toString("base64");
  const big = JSON.stringify({
    from: "app@origin.test",
    to: "user@dest.test",
    text: "x",
    attachments: [{ filename: "big.bin", content: attachment }],
  });
  const send = () =>
    fetch(`http://127.0.0.1:${relay.httpPort}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${relay.adminToken}`, "content-type": "application/json" },
      body: big,
    }).then(async (r) => ({
      status: r.status,
      retry: r.headers.get("retry-after"),
      body: await r.text(),
    }));
  const small = JSON.stringify({ from: "app@origin.test", to: "user@dest.test", text: "hi" });
  const [attacks, victim] = await Promise.all([
    Promise.all(Array.from({ length: ATTACKS }, send)),
    postFrom(relay, "127.0.0.2", "/v1/messages", small),
  ]);
  const after = await procStatusBytes(relay.pid, "VmHWM");
  console.log(
    `HTTP: ${ATTACKS} x ${mb(big.length)} JSON; statuses ${attacks.map((a) => a.status)}; ` +
      `VmHWM ${mb(before)} -> ${mb(after)} (+${mb(after - before)}), budget ${mb(BUDGET)} + ` +
      `margin ${mb(MARGIN)}`,
  );
  const busy = attacks.filter((a) => a.status === 503);
  // While one is held the others are refused; one that arrives after an earlier one finished may
  // be admitted in its turn (and refused with 413).
  assert.ok(busy.length >= ATTACKS / 2, JSON.stringify(attacks.map((a) => a.status)));
  for (const b of busy) {
    assert.equal(JSON.parse(b.body).error.code, "memory_busy");
    assert.ok(Number(b.retry) >= 1, `Retry-After ${b.retry}`);
  }
  for (const a of attacks.filter((a) => a.status !== 503)) assert.equal(a.status, 413);
  assert.equal(victim.status, 202, victim.text);
  assert.ok(after - before <= BUDGET + MARGIN, `grew by ${mb(after - before)}`);
});
