/**
 * The message of a DATA as intake reads it (message_chunks.ts), on real node:stream PassThrough
 * streams as smtp-server hands them out: what arrives, what ends it, and the waiting.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { messageChunks } from "./message_chunks.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (chunks: Uint8Array[]) => chunks.map((c) => new TextDecoder().decode(c)).join("");

Deno.test("a message is read whole and in order, however it was cut into chunks", async () => {
  const stream = new PassThrough();
  const parts = ["Subject: a\r\n", "\r\n", "line one\r\n", "line two\r\n"];
  queueMicrotask(() => {
    for (const p of parts) stream.write(bytes(p));
    stream.end();
  });
  const read: Uint8Array[] = [];
  for await (const chunk of messageChunks(stream)) read.push(chunk);
  assert.equal(text(read), parts.join(""));
});

Deno.test("a client that leaves mid-message ends the read with an error, not a short message", async () => {
  const stream = new PassThrough();
  queueMicrotask(() => {
    stream.write(bytes("Subject: a\r\n"));
    setTimeout(() => stream.destroy(), 0); // smtp-server, when the socket closes mid-DATA
  });
  const read: Uint8Array[] = [];
  await assert.rejects(async () => {
    for await (const chunk of messageChunks(stream)) read.push(chunk);
  }, /Premature close/);
  assert.equal(text(read), "Subject: a\r\n");

  const failing = new PassThrough();
  queueMicrotask(() => failing.destroy(new Error("Connection closed before the message")));
  await assert.rejects(async () => {
    for await (const _ of messageChunks(failing)) { /* nothing arrives */ }
  }, /Connection closed before the message/);
});

Deno.test("while the reader is busy with a chunk the stream waits, and a reader that gives up discards the rest", async () => {
  const stream = new PassThrough();
  const chunks = messageChunks(stream)[Symbol.asyncIterator]();
  stream.write(bytes("first"));
  const first = await chunks.next();
  assert.equal(text([first.value!]), "first");
  stream.write(bytes("second"));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(stream.isPaused(), true, "held while the reader has not asked again");
  const second = await chunks.next();
  assert.equal(text([second.value!]), "second");
  assert.equal(stream.isPaused(), false, "let go once the reader asked");
  await chunks.return!();
  assert.equal(stream.destroyed, true, "the rest of the message is dropped");
});
