/**
 * Retention: messages older than the configured period leave the store, bodies first (the bulk
 * of the bytes), then recipient rows, events, index entries and last the message record itself,
 * so a sweep cut short by a crash is picked up again by the next one from the record. Messages
 * that still have queued or deferred recipients are left alone: retention never drops mail.
 * Stats counters older than the period go too; idempotency keys and given-up webhook events
 * carry their own expiry.
 */
import { keys } from "./keys.ts";
import { deleteBody } from "./bodies.ts";
import { idTimePrefix } from "../ids.ts";
import { FINAL_STATUSES } from "../model.ts";
import { messageEventKeys } from "./events.ts";
import { listRows } from "./queue.ts";
import { messageOf } from "./records.ts";
import { messageIndexKeys } from "./message_index.ts";
import { listAccounts } from "./accounts.ts";
import { directCommit, MeteredWriter } from "./metered.ts";

export interface RetentionResult {
  deleted: number;
  /** Older than the period but still in the queue. */
  kept: number;
  /** The last message id looked at: pass it as `after` to go on; null when none was left. */
  last: string | null;
}

export async function sweepExpiredMessages(
  kv: Deno.Kv,
  options: { retentionMs: number; now: number; limit?: number; after?: string },
): Promise<RetentionResult> {
  const end = keys.message(idTimePrefix(options.now - options.retentionMs));
  const result: RetentionResult = { deleted: 0, kept: 0, last: null };
  // A message id followed by NUL sorts right after that id: the sweep goes on past it.
  const selector = options.after
    ? { start: keys.message(options.after + "\0"), end }
    : { prefix: keys.messagePrefix(), end };
  const iter = kv.list(selector, { limit: options.limit ?? 1000 });
  for await (const entry of iter) {
    const msg = messageOf(entry.key, entry.value);
    result.last = msg.id;
    const rows = await listRows(kv, msg.id);
    if (rows.some((r) => !FINAL_STATUSES.has(r.status))) {
      result.kept++;
      continue;
    }
    await deleteBody(kv, msg);
    const doomed: Deno.KvKey[] = rows.map((r) => keys.recipient(msg.id, r.idx));
    doomed.push(...await messageEventKeys(kv, msg, rows));
    doomed.push(...messageIndexKeys(msg, rows));
    // As few commits as KV's limits allow; the message record goes last, so a sweep cut short
    // finds the message again and finishes it.
    const writer = new MeteredWriter(directCommit(kv));
    for (const key of doomed) await writer.delete(key);
    await writer.flush();
    await kv.atomic().check(entry).delete(entry.key).commit();
    result.deleted++;
  }
  return result;
}

/** Deletes every account's stats counters for hours before the retention period. */
export async function sweepExpiredStats(
  kv: Deno.Kv,
  options: { retentionMs: number; now: number },
): Promise<number> {
  let deleted = 0;
  for (const account of await listAccounts(kv)) {
    const prefix = keys.statPrefix(account.id);
    const doomed: Deno.KvKey[] = [];
    const iter = kv.list({ start: prefix, end: [...prefix, options.now - options.retentionMs] });
    for await (const e of iter) doomed.push(e.key);
    // As few commits as KV's limits allow; the message record goes last, so a sweep cut short
    // finds the message again and finishes it.
    const writer = new MeteredWriter(directCommit(kv));
    for (const key of doomed) await writer.delete(key);
    await writer.flush();
    deleted += doomed.length;
  }
  return deleted;
}
