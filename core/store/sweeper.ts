/**
 * Removes what a crash mid-intake left behind: chunks and rows written ahead of a message commit
 * that never happened, found through their staged marker, and spooled body files no message
 * record names.
 */
import { keys } from "./keys.ts";
import { deleteBody } from "./bodies.ts";
import { bodySpoolOf } from "./body_spool.ts";

const STALE_AFTER_MS = 60 * 60_000;

export async function sweepStaged(kv: Deno.Kv, now = Date.now()): Promise<number> {
  let swept = 0;
  for await (const e of kv.list<{ createdAt: number }>({ prefix: keys.stagedPrefix() })) {
    if (now - e.value.createdAt < STALE_AFTER_MS) continue;
    const id = e.key[1] as string;
    if ((await kv.get(keys.message(id))).value) {
      await kv.delete(e.key); // committed after all; only the marker was left
      continue;
    }
    let chunks = 0;
    for await (const _ of kv.list({ prefix: keys.bodyPrefix(id) })) chunks++;
    await deleteBody(kv, { id, chunks: chunks + 1 });
    for await (const row of kv.list({ prefix: keys.recipientPrefix(id) })) await kv.delete(row.key);
    await kv.delete(e.key);
    swept++;
  }
  const spool = bodySpoolOf(kv);
  if (spool?.writable) swept += await spool.sweep(kv, now);
  return swept;
}
