/**
 * A due entry taken for delivery, and how a claimed entry becomes one: the entry is re-read after
 * the claim, so an attempt recorded meanwhile (its commit deletes the entry) is never sent again.
 */
import {
  dropDue,
  dropOrphanDue,
  type DueEntry,
  loadRows,
  readClaimedDue,
} from "../../core/store/queue.ts";
import { FINAL_STATUSES, type MessageRecord, type RecipientRow } from "../../core/model.ts";

export interface Job {
  due: DueEntry;
  msg: MessageRecord;
  rows: RecipientRow[];
}

/** The in-flight identity of a due entry (the worker's shared set holds these). */
export function keyId(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

/** The job for a due entry claimed on this node; null when there is nothing (left) to send. */
export async function loadJob(kv: Deno.Kv, due: DueEntry): Promise<Job | null> {
  // Read after the claim: an attempt of this entry recorded before it (the commit deletes the
  // entry) shows here, however old the listing that named the entry is.
  const { current, msg, staged } = await readClaimedDue(kv, due);
  if (!current) return null;
  if (!msg) {
    // Written ahead of a message commit that has not happened yet (staged), or never will.
    if (!staged) await dropOrphanDue(kv, due);
    return null;
  }
  const rows = (await loadRows(kv, due.msgId, due.rcpts)).filter((r) =>
    !FINAL_STATUSES.has(r.status)
  );
  if (rows.length === 0) {
    await dropDue(kv, due);
    return null;
  }
  return { due, msg, rows };
}
