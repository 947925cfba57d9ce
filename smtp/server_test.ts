/**
 * Property tests of the SMTP command/DATA reader as it runs in Postern: smtp-server with our
 * patches, started by startSmtp() on loopback, with the real intake and a real KV file. The
 * bytes a client sends are cut into random TCP segments; what Postern stores, and what it
 * answers, must not depend on where the cuts fall.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startSmtp } from "./server.ts";
import { loadConfig } from "../core/config/load.ts";
import { Committer } from "../core/store/committer.ts";
import { BodyCache } from "../core/store/body_cache.ts";
import { QueueSignal } from "../core/queue_signal.ts";
import { createLogger } from "../core/log.ts";
import { SendLimits } from "../core/send_limits.ts";
import { openTlsSource } from "../core/tls_source.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

interface Harness {
  port: number;
  bodyCache: BodyCache;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_smtp_prop_" });
  const config = loadConfig({
    POSTERN_DATA_DIR: dataDir,
    POSTERN_LISTEN: "127.0.0.1",
    POSTERN_SMTP_PORT: "0",
    POSTERN_SMTPS_PORT: "0",
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    // Each property run is a session of its own, far more than a real client opens.
    POSTERN_SMTP_CLIENT_CONNECTION_LIMIT: "0",
  });
  const kv = await Deno.openKv(`${dataDir}/postern.kv`);
  const log = createLogger({ level: "error", write: () => {} });
  const bodyCache = new BodyCache();
  const intake = {
    kv,
    committer: new Committer(kv),
    hostname: "relay.test",
    maxMessageSize: config.maxMessageSize,
    bodyCache,
    signal: new QueueSignal(),
    log,
  };
  const smtp = await startSmtp({
    config,
    hostname: "relay.test",
    intake,
    tls: (await openTlsSource({}, { dataDir, hostname: "relay.test", now: Date.now() })).loaded
      .pair,
    log,
    trustedAccount: "default",
    limits: new SendLimits(kv),
  });
  return {
    port: smtp.ports().submission,
    bodyCache,
    async [Symbol.asyncDispose]() {
      await smtp.close();
      kv.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** One session: waits for the greeting, writes `segments` one by one, reads `replies` replies. */
async function converse(port: number, segments: Uint8Array[], replies: number): Promise<string[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  let buffer = "";
  const lines: string[] = [];
  const chunk = new Uint8Array(64 * 1024);
  const readReplies = async (count: number) => {
    while (lines.length < count) {
      const end = buffer.indexOf("\r\n");
      if (end >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!/^\d{3}-/.test(line)) lines.push(line);
        continue;
      }
      const n = await conn.read(chunk);
      if (n === null) break;
      buffer += latin1.decode(chunk.subarray(0, n));
    }
  };
  try {
    await readReplies(1); // the greeting: Postern greets at once, but an early talker is refused
    for (const segment of segments) await conn.write(segment);
    await readReplies(replies + 1);
    return lines.slice(1);
  } finally {
    conn.close();
  }
}

/** `bytes` cut at the given offsets. */
function cut(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    if (p > from) parts.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < bytes.length) parts.push(bytes.subarray(from));
  return parts;
}

/** Lines rich in what a DATA reader can get wrong: lone dots, leading dots, dots before CRLF. */
const bodyLine = fc.oneof(
  fc.constantFrom(".", "..", "...", ". ", ".\t.", "", " .", "a.", ".a", "x\r"),
  fc.string({ unit: fc.constantFrom(".", "a", " ", "Z", "é"), maxLength: 12 }),
).map((l) => l.replace(/\r/g, ""));

function dotStuff(lines: string[]): string {
  return lines.map((l) => (l.startsWith(".") ? "." + l : l) + "\r\n").join("");
}

function bodyOf(message: Uint8Array): string {
  const text = new TextDecoder().decode(message);
  return text.slice(text.indexOf("\r\n\r\n") + 4);
}

const PIPELINE = "EHLO client.test\r\nMAIL FROM:<app@origin.test>\r\nRCPT TO:<user@dest.test>\r\n" +
  "DATA\r\n";

Deno.test("the DATA reader stores the same message however TCP cuts the bytes, and dot-unstuffs it", async () => {
  await using h = await startHarness();
  await fc.assert(
    fc.asyncProperty(
      fc.array(bodyLine, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      async (lines, offsets) => {
        const wire = encoder.encode(
          PIPELINE + "Subject: p\r\n\r\n" + dotStuff(lines) + ".\r\nQUIT\r\n",
        );
        const replies = await converse(h.port, cut(wire, offsets), 6);
        assert.deepEqual(replies.map((r) => r.slice(0, 3)), [
          "250",
          "250",
          "250",
          "354",
          "250",
          "221",
        ], replies.join(" | "));
        const id = /queued as (\S+)/.exec(replies[4]!)![1]!;
        const stored = h.bodyCache.get(id);
        assert.ok(stored, "the message is in the body cache");
        assert.equal(bodyOf(stored), lines.map((l) => l + "\r\n").join(""));
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("a bare CR, bare LF or NUL anywhere in DATA is refused with 550 5.5.2 however TCP cuts the bytes", async () => {
  await using h = await startHarness();
  await fc.assert(
    fc.asyncProperty(
      fc.array(bodyLine, { minLength: 1, maxLength: 8 }),
      fc.nat(),
      fc.constantFrom("\n", "\r", "\0", "\n.\n", "\r.\r", "\n.\r\n", "\r.\n", "\r\n.\r", "\r\n.\n"),
      fc.array(fc.nat(), { maxLength: 40 }),
      async (lines, where, bad, offsets) => {
        // The bad bytes go between two lines, inside a line of their own ("x" + bad + "x"), so
        // they never join the CRLFs around them into a real end of data.
        const k = where % (lines.length + 1);
        const body = dotStuff(lines.slice(0, k)) + "x" + bad + "x\r\n" + dotStuff(lines.slice(k));
        const wire = encoder.encode(
          PIPELINE + "Subject: p\r\n\r\n" + body + ".\r\nRSET\r\nQUIT\r\n",
        );
        const replies = await converse(h.port, cut(wire, offsets), 7);
        assert.deepEqual(replies.map((r) => r.slice(0, 3)), [
          "250",
          "250",
          "250",
          "354",
          "550",
          "250",
          "221",
        ], `${JSON.stringify(body)}: ${replies.join(" | ")}`);
        assert.match(replies[4]!, /^550 5\.5\.2 /);
      },
    ),
    { numRuns: 80 },
  );
});

/** End-of-data look-alikes a lenient reader (or the next hop) might take for CRLF.CRLF. */
const FAKE_ENDS = ["\n.\n", "\r.\r", "\n.\r\n", "\r.\n", "\r\n.\r", "\r\n.\n"];

Deno.test("no malformed end of data ends DATA or lets a smuggled transaction through, however TCP cuts the bytes", async () => {
  await using h = await startHarness();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...FAKE_ENDS),
      fc.boolean(),
      fc.array(fc.nat(), { maxLength: 60 }),
      async (fakeEnd, withNul, offsets) => {
        const smuggled = "MAIL FROM:<evil@origin.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n" +
          "Subject: smuggled\r\n\r\nsmuggled\r\n";
        const body = "Subject: p\r\n\r\nhello" + (withNul ? "\0" : "") + fakeEnd + smuggled;
        const wire = encoder.encode(PIPELINE + body + ".\r\nQUIT\r\n");
        const replies = await converse(h.port, cut(wire, offsets), 6);
        // One transaction, one verdict: the smuggled MAIL/RCPT/DATA are message text.
        assert.deepEqual(
          replies.map((r) => r.slice(0, 3)),
          ["250", "250", "250", "354", "550", "221"],
          `${JSON.stringify(fakeEnd)}: ${replies.join(" | ")}`,
        );
      },
    ),
    { numRuns: 60 },
  );
});
