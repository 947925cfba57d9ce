/**
 * Events in the store. Each event is written twice in the commit of the state change it records:
 * under its message (["ev", msgId, id], the message's timeline) and in its account's log
 * (["evlog", account, id]), which consumers and webhook actors read by cursor.
 *
 * Reading the log by cursor has one trap: event ids are taken from the clock when a commit is
 * built, but commits land a little later, and another node's clock may lag ours. A reader that
 * ran right up to "now" could move its cursor past an id whose commit has not landed yet, and
 * that event would never be seen. Instead of reading to now, readers stop `settleMs` short of it:
 * a commit that takes longer than the settle window to land after its ids were made is the only
 * way to slip behind a cursor. Ids are made inside `apply()`, at the moment the commit is built,
 * so the window only has to cover one commit (including "database is locked" retries) and the
 * clock skew between nodes.
 */
import { keys } from "./keys.ts";
import { idTimePrefix, monotonicId } from "../ids.ts";
import type { EventType, MessageEvent } from "../model.ts";

/** Stamps `event` with a fresh, time-ordered id; call inside `Change.apply`. */
export function stampEvent(event: Omit<MessageEvent, "id">): MessageEvent {
  return { ...event, id: monotonicId() } as MessageEvent;
}

/** Adds one event to a commit: the message timeline and the account log. */
export function putEvent(op: Deno.AtomicOperation, account: string, event: MessageEvent) {
  op.set(keys.event(event.msgId, event.id), event);
  op.set(keys.accountEvent(account, event.id), event);
}

export interface EventPage {
  events: MessageEvent[];
  /** The last id scanned (matching or not): the cursor to continue after. Null when none. */
  last: string | null;
  /** The page stopped at `limit`: more may follow at once. */
  more: boolean;
}

export interface ListEventsOptions {
  /** Exclusive: read events with ids above this (an event id, or an id time prefix). */
  after?: string;
  /** Read only events whose ids were made before this time (ms); see the module comment. */
  until: number;
  limit: number;
  /** Only these types are returned; the others still move `last` on. */
  types?: ReadonlySet<EventType>;
  /** Stop after scanning this many entries even when few matched. @default limit * 20 */
  maxScan?: number;
}

export async function listAccountEvents(
  kv: Deno.Kv,
  account: string,
  options: ListEventsOptions,
): Promise<EventPage> {
  const prefix = keys.accountEventPrefix(account);
  const end = [...prefix, idTimePrefix(options.until)];
  const start = options.after ? [...prefix, options.after] : prefix;
  if (options.after && options.after >= idTimePrefix(options.until)) {
    return { events: [], last: null, more: false };
  }
  const maxScan = options.maxScan ?? options.limit * 20;
  const events: MessageEvent[] = [];
  let last: string | null = null;
  let scanned = 0;
  const iter = options.after
    ? kv.list<MessageEvent>({ start, end }, { batchSize: Math.min(500, options.limit + 1) })
    : kv.list<MessageEvent>({ prefix, end }, { batchSize: Math.min(500, options.limit + 1) });
  for await (const entry of iter) {
    const id = entry.key[2] as string;
    if (id === options.after) continue;
    if (events.length >= options.limit || scanned >= maxScan) {
      return { events, last, more: true };
    }
    scanned++;
    last = id;
    if (!options.types || options.types.has(entry.value.type)) events.push(entry.value);
  }
  return { events, last, more: false };
}

/** The message timeline: every event of one message, oldest first. */
export async function listMessageEvents(kv: Deno.Kv, msgId: string): Promise<MessageEvent[]> {
  const out: MessageEvent[] = [];
  for await (const e of kv.list<MessageEvent>({ prefix: keys.eventPrefix(msgId) })) {
    out.push(e.value);
  }
  return out;
}
