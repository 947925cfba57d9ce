/**
 * Message bodies as chunks below KV's 64 KiB value limit. Reading streams chunk batches so a
 * 50 MB body never sits whole in memory.
 */
import { keys } from "./keys.ts";

export const CHUNK_SIZE = 63_000;
/** Chunks read per KV round trip while streaming a body out. */
const READ_BATCH = 8;

export async function* readBody(
  kv: Deno.Kv,
  id: string,
  chunks: number,
): AsyncGenerator<Uint8Array> {
  for (let n = 0; n < chunks; n += READ_BATCH) {
    const batch = [];
    for (let i = n; i < Math.min(chunks, n + READ_BATCH); i++) batch.push(keys.body(id, i));
    const entries = await kv.getMany<Uint8Array[]>(batch);
    for (const entry of entries) {
      if (!entry.value) {
        throw new Error(
          `Cannot read body of message ${id}: chunk ${String(entry.key[2])} is missing`,
        );
      }
      yield entry.value;
    }
  }
}

/** The body's first chunk (where its header section starts), or null when none is stored. */
export async function readFirstChunk(kv: Deno.Kv, id: string): Promise<Uint8Array | null> {
  return (await kv.get<Uint8Array>(keys.body(id, 0))).value;
}

/** How many chunks of a message's body are stored under ["body", id, n] (none when it rides in its due entry). */
export function storedChunks(msg: { chunks: number; bodyInDue?: true }): number {
  return msg.bodyInDue ? 0 : msg.chunks;
}

/** Adds the deletes of a body's chunks to a commit. */
export function deleteBodyOp(op: Deno.AtomicOperation, id: string, chunks: number) {
  for (let i = 0; i < chunks; i++) op.delete(keys.body(id, i));
}

/** Deletes a body's chunks in commits of at most `perCommit` deletes. */
export async function deleteBody(kv: Deno.Kv, id: string, chunks: number, perCommit = 500) {
  for (let n = 0; n < chunks; n += perCommit) {
    const op = kv.atomic();
    for (let i = n; i < Math.min(chunks, n + perCommit); i++) op.delete(keys.body(id, i));
    await op.commit();
  }
}

export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/**
 * The message as it is sent: the record's `prefix` (the DKIM-Signature fields added at intake)
 * in front of the stored body, which is left as it is.
 */
export function withPrefix(
  prefix: string | undefined,
  body: Uint8Array | AsyncIterable<Uint8Array>,
): Uint8Array | AsyncIterable<Uint8Array> {
  if (!prefix) return body;
  const head = new TextEncoder().encode(prefix);
  if (body instanceof Uint8Array) return concatChunks([head, body]);
  return (async function* () {
    yield head;
    yield* body;
  })();
}
