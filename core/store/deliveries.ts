/**
 * Recording a delivery attempt: one commit per transaction that removes the due entry, moves
 * each recipient row to its new state, files the next due entry for the deferred ones and writes
 * one event per recipient (in the account's event log, its id on the row, and the stats
 * counters). A check on the due entry's versionstamp makes a replayed attempt (a
 * second node, a restart) a no-op rather than a second state change.
 */
import { keys } from "./keys.ts";
import type { Change } from "./committer.ts";
import type { DueEntry } from "./queue.ts";
import { storedRow } from "./records.ts";
import { monotonicId } from "../ids.ts";
import type {
  EventType,
  MessageEvent,
  MessageRecord,
  RecipientRow,
  RecipientStatus,
} from "../model.ts";
import { putEvent, withEvent } from "./events.ts";
import { StatTally } from "./stats.ts";
import { dueEntries, putDue } from "./due_groups.ts";

export interface RecipientResult {
  row: RecipientRow;
  status: RecipientStatus;
  event: EventType;
  reply: string;
  category: string | null;
  /** For deferred recipients: when to try again. */
  nextAttemptAt: number | null;
  countsAsAttempt: boolean;
  /** The attempt failed at DNS, before any server was reached (its expiry never suppresses). */
  dnsCaused?: boolean;
}

export interface AttemptContext {
  /** The message attempted: its events go to its account's log and counters, under its tags. */
  message: Pick<MessageRecord, "account" | "tags">;
  remoteHost?: string;
  localAddress?: string;
  tls?: string;
  tlsDetails?: MessageEvent["tlsDetails"];
}

export function attemptChange(
  due: DueEntry,
  results: readonly RecipientResult[],
  ctx: AttemptContext,
  now: number,
  extra?: (op: Deno.AtomicOperation) => void,
): Change {
  const nextDue = new Map<number, number[]>();
  const rows: RecipientRow[] = [];
  const events: Omit<MessageEvent, "id">[] = [];
  const tally = new StatTally();
  const account = ctx.message.account;
  for (const r of results) {
    const row: RecipientRow = {
      ...r.row,
      status: r.status,
      attempts: r.row.attempts + (r.countsAsAttempt ? 1 : 0),
      nextAttemptAt: r.nextAttemptAt,
      lastReply: r.reply.slice(0, 1000),
      ...(r.category ? { lastCategory: r.category } : {}),
      ...(ctx.localAddress ? { lastSource: ctx.localAddress } : {}),
      updatedAt: now,
    };
    rows.push(row);
    const event: Omit<MessageEvent, "id"> = {
      msgId: row.msgId,
      type: r.event,
      at: now,
      rcpt: row.rcpt,
      reply: row.lastReply!,
      ...(r.category ? { category: r.category } : {}),
      ...(ctx.remoteHost ? { remoteHost: ctx.remoteHost } : {}),
      ...(ctx.localAddress ? { localAddress: ctx.localAddress } : {}),
      ...(ctx.tls ? { tls: ctx.tls } : {}),
      ...(ctx.tlsDetails ? { tlsDetails: ctx.tlsDetails } : {}),
      ...(r.nextAttemptAt ? { nextAttemptAt: r.nextAttemptAt } : {}),
    };
    events.push(event);
    tally.add(account, r.event, now, {
      domain: row.domain,
      ...(ctx.message.tags ? { tags: ctx.message.tags } : {}),
      ...(r.event === "delivered" ? { latencyMs: now - row.queuedAt } : {}),
    });
    if (r.nextAttemptAt !== null) {
      const list = nextDue.get(r.nextAttemptAt) ?? [];
      list.push(row.idx);
      nextDue.set(r.nextAttemptAt, list);
    }
  }
  const filed = [...nextDue].flatMap(([at, idxs]) =>
    dueEntries(due.domain, at, due.msgId, idxs, due.body, due.prefix)
  );
  return {
    apply(op) {
      op.check({ key: due.key, versionstamp: due.versionstamp });
      op.delete(due.key);
      // Event ids are taken now, as the commit is built (core/store/events.ts says why); each
      // row lists its event's id, which is how the message's timeline finds it.
      rows.forEach((row, i) => {
        const event = { ...events[i]!, id: monotonicId() } as MessageEvent;
        putEvent(op, account, event);
        op.set(keys.recipient(row.msgId, row.idx), storedRow(withEvent(row, event.id)));
      });
      tally.apply(op);
      // A body that rides in the due entry moves on with the recipients still to be tried.
      for (const d of filed) putDue(op, d);
      extra?.(op);
    },
  };
}
