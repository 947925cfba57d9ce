/**
 * MessageStream as its readers use it: intake through messageChunks (one chunk held at a time,
 * the connection told when to go on), the listeners of the sandbox and report handlers, and a
 * client that leaves before the end.
 */
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { MessageStream } from "./message_stream.ts";
import { messageChunks } from "../message_chunks.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (chunks: Uint8Array[]) => chunks.map((c) => new TextDecoder().decode(c)).join("");

Deno.test("chunks written before a reader comes are held, then handed out in order, then the end", async () => {
  const stream = new MessageStream();
  let drained = 0;
  assert.equal(stream.write(bytes("one "), () => drained++), false, "held: no reader yet");
  const got: Uint8Array[] = [];
  const ended = new Promise<void>((r) => stream.on("end", r));
  stream.on("data", (c: Uint8Array) => got.push(c));
  await Promise.resolve();
  assert.equal(drained, 1, "the connection hears the held chunk was taken");
  assert.equal(
    stream.write(bytes("two"), () => drained++),
    true,
    "a flowing reader takes it at once",
  );
  stream.end();
  await ended;
  assert.equal(text(got), "one two");
  assert.equal(stream.readable, false);
});

Deno.test("through messageChunks the connection waits while intake is busy with a chunk", async () => {
  const stream = new MessageStream();
  const chunks = messageChunks(stream as unknown as Readable)[Symbol.asyncIterator]();
  const first = chunks.next();
  assert.equal(stream.write(bytes("a"), () => {}), true);
  assert.equal((await first).value && text([(await first).value!]), "a");
  // Nobody asks for the next chunk yet: the stream holds it and tells the connection to wait.
  let drained = false;
  assert.equal(stream.write(bytes("b"), () => (drained = true)), false);
  const second = await chunks.next();
  assert.equal(text([second.value!]), "b");
  await Promise.resolve();
  assert.ok(drained, "once taken, the connection goes on");
  stream.end();
  assert.equal((await chunks.next()).done, true);
});

Deno.test("a message whose client left is an error for its reader, and later writes are dropped", async () => {
  const stream = new MessageStream();
  const chunks = messageChunks(stream as unknown as Readable)[Symbol.asyncIterator]();
  stream.write(bytes("partial"), () => {});
  assert.equal(text([(await chunks.next()).value!]), "partial");
  stream.destroy(new Error("Connection closed before the message was received in full"));
  await assert.rejects(chunks.next(), /received in full/);
  assert.equal(stream.write(bytes("more"), () => {}), true);
  assert.equal(stream.destroyed, true);
});

Deno.test("a reader that stops early (its loop threw) destroys the stream", async () => {
  const stream = new MessageStream();
  stream.write(bytes("x"), () => {});
  for await (const _ of messageChunks(stream as unknown as Readable)) break;
  assert.equal(stream.destroyed, true);
});
