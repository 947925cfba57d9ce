/**
 * The outbound data is byte for byte what nodemailer's own DataStream sends, however the body's
 * bytes are split into chunks: dots at line starts doubled, bare CR and LF made CRLF, the same end.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import DataStream from "nodemailer/lib/smtp-connection/data-stream";
import { Buffer } from "node:buffer";
import { DATA_START, dataEnd, dotStuff } from "./dot_stuffing.ts";

const bodyBytes = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(13, 10, 46, 46, 0x20) },
    { weight: 2, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  ),
  { maxLength: 600 },
).map((a) => Uint8Array.from(a));

/** Cut points into a body: its chunks as a sender's stream would hand them over. */
const cuts = fc.array(fc.nat({ max: 600 }), { maxLength: 6 });

function chunked(body: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((n) => n % (body.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, body.length]) {
    out.push(body.subarray(from, p));
    from = p;
  }
  return out;
}

async function nodemailerWire(chunks: Uint8Array[]): Promise<Uint8Array> {
  // deno-lint-ignore no-explicit-any
  const stream = new (DataStream as any)();
  const parts: Uint8Array[] = [];
  stream.on("data", (c: Uint8Array) => parts.push(c));
  const ended = new Promise((resolve) => stream.on("end", resolve));
  for (const c of chunks) stream.write(Buffer.from(c));
  stream.end();
  await ended;
  return Uint8Array.from(Buffer.concat(parts));
}

function ourWire(chunks: Uint8Array[]): Uint8Array {
  const parts: number[] = [];
  let last = DATA_START;
  for (const c of chunks) {
    parts.push(...dotStuff(c, last));
    if (c.length > 0) last = c[c.length - 1]!;
  }
  parts.push(...dataEnd(last));
  return Uint8Array.from(parts);
}

Deno.test("outbound data is byte for byte what nodemailer sends, however the body is chunked", async () => {
  await fc.assert(
    fc.asyncProperty(bodyBytes, cuts, async (body, at) => {
      const chunks = chunked(body, at);
      assert.deepEqual(ourWire(chunks), await nodemailerWire(chunks));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("a chunk with no dot at a line start and only CRLF line ends is sent as it is", () => {
  const chunk = new TextEncoder().encode("Subject: x\r\n\r\nhello.\r\nworld\r\n");
  assert.equal(dotStuff(chunk, DATA_START), chunk);
  assert.deepEqual(
    new TextDecoder().decode(dotStuff(new TextEncoder().encode(".a\r\n.b\r\n"), 10)),
    "..a\r\n..b\r\n",
  );
});
