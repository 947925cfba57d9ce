/**
 * Recording what a report says about a recipient after its delivery: an asynchronous bounce
 * moves the row to `bounced` and, for a bad address, suppresses it; a complaint records
 * `complained` and suppresses the address. Each in one commit with its event, log entry and
 * counters, like every other state change; a check on the row makes a repeated report a no-op.
 */
import { keys } from "./keys.ts";
import type { Change } from "./committer.ts";
import { monotonicId } from "../ids.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "../model.ts";
import { putUnlistedEvent } from "./events.ts";
import { StatTally } from "./stats.ts";
import { type Suppression, suppressOps } from "./suppressions.ts";
import { rowOf, type StoredRow, storedRow } from "./records.ts";

export interface ReportOutcome {
  type: "bounced" | "complained";
  reply: string;
  category: string;
  /** Set when the address goes on the account's suppression list. */
  suppress: Suppression | null;
  /** The list it goes on, when not the account's own (the sandbox's, for a simulator address). */
  list?: string;
}

export function reportChange(
  msg: MessageRecord,
  row: Deno.KvEntry<RecipientRow>,
  outcome: ReportOutcome,
  now: number,
): Change {
  const r = row.value;
  const reply = outcome.reply.slice(0, 1000);
  const event: Omit<MessageEvent, "id"> = {
    msgId: msg.id,
    type: outcome.type,
    at: now,
    rcpt: r.rcpt,
    reply,
    category: outcome.category,
  };
  const tally = new StatTally();
  tally.add(msg.account, outcome.type, now, {
    domain: r.domain,
    ...(msg.tags ? { tags: msg.tags } : {}),
  });
  return {
    apply(op) {
      op.check(row);
      if (outcome.type === "bounced") {
        op.set(
          row.key,
          storedRow({
            ...r,
            status: "bounced",
            nextAttemptAt: null,
            lastReply: reply,
            lastCategory: outcome.category,
            updatedAt: now,
          }),
        );
      } else {
        op.set(row.key, storedRow({ ...r, updatedAt: now })); // moves the versionstamp
      }
      // Rare (a report after delivery): kept under the message itself too.
      putUnlistedEvent(op, msg.account, { ...event, id: monotonicId() } as MessageEvent);
      tally.apply(op);
      if (outcome.suppress) suppressOps(op, outcome.list ?? msg.account, outcome.suppress);
    },
  };
}

/**
 * The row a return path names: recipient `idx`, or, for an older per-message return path (idx
 * null), the message's only recipient; null when there is no such row or more than one.
 */
export async function reportedRow(
  kv: Deno.Kv,
  msgId: string,
  idx: number | null,
): Promise<Deno.KvEntry<RecipientRow> | null> {
  if (idx !== null) {
    const entry = await kv.get<StoredRow>(keys.recipient(msgId, idx));
    return entry.value ? { ...entry, value: rowOf(entry.key, entry.value) } : null;
  }
  const rows = await Array.fromAsync(
    kv.list<StoredRow>({ prefix: keys.recipientPrefix(msgId) }, { limit: 2 }),
  );
  return rows.length === 1 ? { ...rows[0]!, value: rowOf(rows[0]!.key, rows[0]!.value) } : null;
}
