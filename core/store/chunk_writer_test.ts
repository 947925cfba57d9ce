import assert from "node:assert/strict";
import { Committer } from "./committer.ts";
import { ChunkWriter } from "./messages.ts";
import { CHUNK_SIZE, concatChunks } from "./bodies.ts";

/** A body of `size` bytes that shows where each byte came from. */
function bodyOf(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 8)) & 255);
}

Deno.test("a body written in pieces of any size comes back whole, in full chunks and one short last chunk", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const sizes = [1, 2048, 4096, 4097, 10_240, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1];
    for (const size of [...sizes, 3 * CHUNK_SIZE + 5]) {
      for (const piece of [1_000, 4_096, 65_536]) {
        const body = bodyOf(size);
        const writer = new ChunkWriter(new Committer(kv), `m${size}-${piece}`);
        for (let i = 0; i < size; i += piece) await writer.write(body.subarray(i, i + piece));
        writer.finish();
        const what = `${size} bytes in pieces of ${piece}`;
        assert.equal(writer.size, size, what);
        assert.ok(writer.chunks.slice(0, -1).every((c) => c.length === CHUNK_SIZE), what);
        assert.equal(writer.chunks.length, Math.ceil(size / CHUNK_SIZE), what);
        assert.deepEqual(concatChunks(writer.chunks), body, what);
      }
    }
  } finally {
    kv.close();
  }
});
