/**
 * Message bodies as chunks below KV's 64 KiB value limit, or (large ones, in a store kept in a
 * local file) as a file beside it (body_spool.ts). Reading streams chunk batches so a 50 MB body
 * never sits whole in memory.
 */
import { keys } from "./keys.ts";
import { directCommit, MeteredWriter } from "./metered.ts";
import { type BodySpool, bodySpoolOf } from "./body_spool.ts";
import type { MessageRecord } from "../model.ts";

export const CHUNK_SIZE = 63_000;
/** Chunks read per KV round trip while streaming a body out. */
const READ_BATCH = 8;

/** Where a message's body is: its chunk count in KV, or a file in the store's spool. */
export type BodyRef = Pick<MessageRecord, "id" | "chunks" | "spooled" | "bodyInDue">;

export async function* readBody(kv: Deno.Kv, ref: BodyRef): AsyncGenerator<Uint8Array> {
  if (ref.spooled) return yield* spoolOf(kv, ref).read(ref.id);
  const { id } = ref;
  const chunks = storedChunks(ref);
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
export async function readFirstChunk(kv: Deno.Kv, ref: BodyRef): Promise<Uint8Array | null> {
  if (ref.spooled) return spoolOf(kv, ref).head(ref.id, CHUNK_SIZE);
  if (storedChunks(ref) === 0) return null;
  return (await kv.get<Uint8Array>(keys.body(ref.id, 0))).value;
}

/**
 * How many chunks of a message's body are stored under ["body", id, n] (none when it rides in its
 * due entry or sits in the spool).
 */
export function storedChunks(ref: BodyRef): number {
  return ref.bodyInDue || ref.spooled ? 0 : ref.chunks;
}

/**
 * Adds the deletes of a body's chunks to a commit. A spooled body has none: its file goes with
 * {@linkcode deleteBody} once the commit has landed.
 */
export function deleteBodyOp(op: Deno.AtomicOperation, ref: BodyRef) {
  for (let i = 0; i < storedChunks(ref); i++) op.delete(keys.body(ref.id, i));
}

/** Deletes a body: its chunks, in as few commits as the store allows, or its spool file. */
export async function deleteBody(kv: Deno.Kv, ref: BodyRef) {
  if (ref.spooled) return await spoolOf(kv, ref).drop(ref.id);
  const writer = new MeteredWriter(directCommit(kv));
  for (let i = 0; i < storedChunks(ref); i++) await writer.delete(keys.body(ref.id, i));
  await writer.flush();
}

function spoolOf(kv: Deno.Kv, ref: BodyRef): BodySpool {
  const spool = bodySpoolOf(kv);
  if (!spool) throw new Error(`Cannot read body of message ${ref.id}: the store has no spool`);
  return spool;
}

const encoder = new TextEncoder();

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
  if (body instanceof Uint8Array) {
    // Encoded straight into the message's buffer: an ASCII prefix (a DKIM-Signature always is)
    // takes one byte a character, and nothing is allocated for it alone.
    const out = new Uint8Array(prefix.length + body.length);
    const { read, written } = encoder.encodeInto(prefix, out);
    if (read === prefix.length && written === prefix.length) {
      out.set(body, written);
      return out;
    }
    return concatChunks([encoder.encode(prefix), body]);
  }
  const head = encoder.encode(prefix);
  return (async function* () {
    yield head;
    yield* body;
  })();
}
