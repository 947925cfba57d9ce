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
import { EVENT_MUTATIONS, putEvent } from "./events.ts";
import { StatTally } from "./stats.ts";
import { type Suppression, suppressOps } from "./suppressions.ts";

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
          {
            ...r,
            status: "bounced",
            nextAttemptAt: null,
            lastReply: reply,
            lastCategory: outcome.category,
            updatedAt: now,
          } satisfies RecipientRow,
        );
      } else {
        op.set(row.key, { ...r, updatedAt: now } satisfies RecipientRow); // moves the versionstamp
      }
      putEvent(op, msg.account, { ...event, id: monotonicId() } as MessageEvent);
      tally.apply(op);
      if (outcome.suppress) suppressOps(op, outcome.list ?? msg.account, outcome.suppress);
    },
    bytes: 3_000 + tally.size * 120,
    mutations: 1 + EVENT_MUTATIONS + tally.size + (outcome.suppress ? 2 : 0),
    checks: 1,
  };
}

/** A row of the message by recipient address (case-insensitive). */
export async function findRow(
  kv: Deno.Kv,
  msgId: string,
  rcpt: string,
): Promise<Deno.KvEntry<RecipientRow> | null> {
  const wanted = rcpt.toLowerCase();
  for await (const e of kv.list<RecipientRow>({ prefix: keys.recipientPrefix(msgId) })) {
    if (e.value.rcpt.toLowerCase() === wanted) return e;
  }
  return null;
}
