/**
 * SmtpInput against smtp-server's own SMTPStream: the same command lines, the same message bytes
 * (dot-unstuffing, where the message ends) and the same commands after it, however TCP cuts the
 * bytes. Bare LFs are refused by our listeners (SmtpInput's second argument); with that off, the
 * line splitting must be SMTPStream's own.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { SMTPStream } from "smtp-server/lib/smtp-stream.js";
import { BARE_LF, DATA, DATA_END, LINE, NEED_MORE, SmtpInput, TOO_LONG } from "./smtp_input.ts";

const latin1 = (b: Uint8Array) => Buffer.from(b).toString("latin1");

/** What came out, as one transcript: "L:<line>" per command, "D:<message>" per message. */
type Transcript = string[];

/** SMTPStream fed `chunks` one write at a time; a line "DATA" starts a message. */
async function viaSmtpStream(chunks: Uint8Array[], maxLine: number): Promise<Transcript> {
  const out: Transcript = [];
  const parser = new SMTPStream({ maxCommandLength: maxLine }) as unknown as {
    oncommand: (command: Buffer, callback?: () => void) => void;
    startDataMode(size?: number): NodeJS.ReadableStream;
    continue(): void;
    write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean;
    on(event: string, fn: (...a: unknown[]) => void): void;
  };
  let failed = false;
  parser.on("error", () => {
    failed = true;
    out.push("E:too long");
  });
  parser.oncommand = (command, callback) => {
    const line = command.toString("latin1");
    out.push("L:" + line);
    if (line === "DATA") {
      const stream = parser.startDataMode();
      const parts: Buffer[] = [];
      stream.on("data", (c: Buffer) => parts.push(c));
      stream.on("end", () => {
        out.push("D:" + Buffer.concat(parts).toString("latin1"));
        setImmediate(() => parser.continue());
      });
    }
    callback?.();
  };
  for (const chunk of chunks) {
    if (failed) break;
    await new Promise<void>((resolve) => parser.write(chunk, () => resolve()));
  }
  // Let a message end that is waiting for continue().
  await new Promise((r) => setTimeout(r, 5));
  return out;
}

function viaSmtpInput(chunks: Uint8Array[], maxLine: number, rejectBareLf = false): Transcript {
  const out: Transcript = [];
  const input = new SmtpInput(maxLine, rejectBareLf);
  let message: Uint8Array[] = [];
  for (const chunk of chunks) {
    input.push(chunk);
    for (;;) {
      const event = input.next();
      if (event === NEED_MORE) break;
      if (event === LINE) {
        const line = latin1(input.line);
        out.push("L:" + line);
        if (line === "DATA") {
          input.startData();
          message = [];
        }
      } else if (event === DATA) {
        message.push(input.chunk.slice());
      } else if (event === DATA_END) {
        message.push(input.chunk.slice());
        out.push("D:" + latin1(Buffer.concat(message)));
      } else if (event === TOO_LONG) {
        out.push("E:too long");
        return out;
      } else if (event === BARE_LF) {
        out.push("E:bare LF");
        return out;
      }
    }
  }
  return out;
}

/** `bytes` cut at the given points. */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    if (p > from) chunks.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < bytes.length) chunks.push(bytes.subarray(from));
  return chunks;
}

const encode = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Sessions rich in what matters: line endings, dots, DATA, the end sequence. */
const session = fc.array(
  fc.oneof(
    fc.constantFrom("\r\n", "\n", "\r", ".", "..", "\r\n.\r\n", "\r\n..", "DATA\r\n", "x", "NOOP"),
    fc.string({ maxLength: 6 }),
  ),
  { maxLength: 40 },
).map((parts) => encode(parts.join("")));

Deno.test("command lines, message bytes and what follows a message come out as from SMTPStream, however TCP cuts them", async () => {
  await fc.assert(
    fc.asyncProperty(
      session,
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.constantFrom(8, 64, 512),
      async (bytes, points, maxLine) => {
        const chunks = cut(bytes, points);
        assert.deepEqual(viaSmtpInput(chunks, maxLine), await viaSmtpStream(chunks, maxLine));
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("a message is dot-unstuffed and ends at CRLF.CRLF, and the next command follows", () => {
  const out = viaSmtpInput([encode("DATA\r\na\r\n..b\r\n.\r\nQUIT\r\n")], 512);
  assert.deepEqual(out, ["L:DATA", "D:a\r\n.b\r\n", "L:QUIT"]);
});

Deno.test("a bare LF ends command reading when bare LFs are refused, however the bytes are cut", () => {
  for (
    const chunks of [["NOOP\r\nMAIL\nRCPT\r\n"], ["NOOP\r\n", "\nX"], ["NOOP\r", "\r\n", "A\nB"]]
  ) {
    const out = viaSmtpInput(chunks.map(encode), 512, true);
    assert.equal(out.at(-1), "E:bare LF");
  }
  // A CR that ends one read and the LF that starts the next are one line ending.
  assert.deepEqual(viaSmtpInput(["NOOP\r", "\nQUIT\r\n"].map(encode), 512, true), [
    "L:NOOP",
    "L:QUIT",
  ]);
});

Deno.test("a line over the limit is refused whether or not its end has come", () => {
  assert.deepEqual(viaSmtpInput([encode("123456789")], 8), ["E:too long"]);
  assert.deepEqual(viaSmtpInput([encode("12345678\r\n123456789\r\n")], 8), [
    "L:12345678",
    "E:too long",
  ]);
});
