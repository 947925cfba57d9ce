/**
 * Recording a delivery attempt: one commit per transaction that removes the due entry, moves
 * each recipient row to its new state, files the next due entry for the deferred ones and writes
 * one event per recipient. A check on the due entry's versionstamp makes a replayed attempt (a
 * second node, a restart) a no-op rather than a second state change.
 */
import { keys } from "./keys.ts";
import type { Change } from "./committer.ts";
import type { DueEntry } from "./queue.ts";
import { newId } from "../ids.ts";
import type { EventType, MessageEvent, RecipientRow, RecipientStatus } from "../model.ts";

export interface RecipientResult {
  row: RecipientRow;
  status: RecipientStatus;
  event: EventType;
  reply: string;
  category: string | null;
  /** For deferred recipients: when to try again. */
  nextAttemptAt: number | null;
  countsAsAttempt: boolean;
}

export interface AttemptContext {
  remoteHost?: string;
  localAddress?: string;
  tls?: string;
}

export function attemptChange(
  due: DueEntry,
  results: readonly RecipientResult[],
  ctx: AttemptContext,
  now: number,
  extra?: (op: Deno.AtomicOperation) => void,
): Change {
  const nextDue = new Map<number, number[]>();
  let bytes = 200;
  let mutations = 1;
  const rows: RecipientRow[] = [];
  const events: MessageEvent[] = [];
  for (const r of results) {
    const row: RecipientRow = {
      ...r.row,
      status: r.status,
      attempts: r.row.attempts + (r.countsAsAttempt ? 1 : 0),
      nextAttemptAt: r.nextAttemptAt,
      lastReply: r.reply.slice(0, 1000),
      ...(r.category ? { lastCategory: r.category } : {}),
      updatedAt: now,
    };
    rows.push(row);
    const event: MessageEvent = {
      id: newId(now),
      msgId: row.msgId,
      type: r.event,
      at: now,
      rcpt: row.rcpt,
      reply: row.lastReply!,
      ...(r.category ? { category: r.category } : {}),
      ...(ctx.remoteHost ? { remoteHost: ctx.remoteHost } : {}),
      ...(ctx.localAddress ? { localAddress: ctx.localAddress } : {}),
      ...(ctx.tls ? { tls: ctx.tls } : {}),
      ...(r.nextAttemptAt ? { nextAttemptAt: r.nextAttemptAt } : {}),
    };
    events.push(event);
    if (r.nextAttemptAt !== null) {
      const list = nextDue.get(r.nextAttemptAt) ?? [];
      list.push(row.idx);
      nextDue.set(r.nextAttemptAt, list);
    }
    bytes += 2 * (400 + row.rcpt.length + row.lastReply!.length);
    mutations += 2;
  }
  mutations += nextDue.size;
  return {
    apply(op) {
      op.check({ key: due.key, versionstamp: due.versionstamp });
      op.delete(due.key);
      for (const row of rows) op.set(keys.recipient(row.msgId, row.idx), row);
      for (const ev of events) op.set(keys.event(ev.msgId, ev.id), ev);
      for (const [at, idxs] of nextDue) {
        op.set(keys.due(due.domain, at, due.msgId, Math.min(...idxs)), { rcpts: idxs });
      }
      extra?.(op);
    },
    bytes,
    mutations: mutations + 60,
    checks: 1,
  };
}
