/**
 * Events in the store. Each event is written once, in the commit of the state change it records,
 * to its account's log (["evlog", account, id]), which consumers and webhook actors read by
 * cursor. A message's timeline is found through the ids its record and its recipient rows keep
 * (`events`), which the same commit writes. A rare event whose commit writes no such record, or
 * one whose rows go on from memory (a release from the hold queue, a report after delivery), also
 * goes under its message (["ev", msgId, id]), as every event did before.
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
import { idTime, idTimePrefix, monotonicId } from "../ids.ts";
import { fieldNames, renamed, sinceBase } from "./compact.ts";
import { EVENT_TYPES } from "../events/vocabulary.ts";
import type { EventType, MessageEvent, MessageRecord, RecipientRow } from "../model.ts";
import { listRows, loadMessage } from "./queue.ts";

/**
 * Events as stored: each field under a one-letter name, the id (which the key ends in) as a
 * placeholder where it stood, the type as its place in EVENT_TYPES, the time as its distance from
 * the id's, so a read gives back the same object (compact.ts). The event log is the store's
 * largest family and grows by one to three events per message; SQLite keeps these records whole
 * in its B-tree, parent pages included, so a delivery event's field names alone were a quarter of
 * the bytes each event cost the disk. An event stored before (or by a writer that stores it whole)
 * has no placeholder and is read as it is; one stored with the placeholder before types and times
 * were shortened has them as they are.
 */
const SHORT: Record<string, string> = {
  msgId: "m",
  type: "t",
  at: "a",
  rcpt: "r",
  reply: "p",
  category: "c",
  remoteHost: "h",
  localAddress: "l",
  tls: "s",
  tlsDetails: "d",
  nextAttemptAt: "n",
  score: "o",
  symbols: "y",
};
const SHORT_TLS: Record<string, string> = {
  version: "v",
  cipher: "c",
  verified: "f",
  verifiedBy: "b",
  verifyError: "e",
};
/**
 * The session's TLS fields an event keeps: what /v1/messages shows. (The session's own record
 * of a failed verification also came along, unread, with every delivery over unverified TLS.)
 */
const KEPT_TLS: ReadonlySet<string> = new Set(["version", "cipher", "verified", "verifiedBy"]);
/**
 * TLS versions and ciphers (OpenSSL's names, as the session reports them) stored as their places
 * in these lists, under their one-letter names: a delivery event's cipher name was its longest
 * field. Append only: stored events name them by these places.
 */
const TLS_PLACES: Readonly<Record<string, readonly string[]>> = {
  v: ["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1"],
  c: [
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "AES256-SHA",
    "AES128-SHA",
  ],
};

/** The session's TLS as stored: its kept fields, named and placed as above. */
function storedTls(details: object): Record<string, unknown> {
  const kept = Object.entries(details).filter(([name]) => KEPT_TLS.has(name));
  const out = renamed(Object.fromEntries(kept), SHORT_TLS);
  for (const [field, names] of Object.entries(TLS_PLACES)) {
    const place = names.indexOf(out[field] as string);
    if (place >= 0) out[field] = place;
  }
  return out;
}

/** The session's TLS stored as `stored`, whole. */
function tlsOf(stored: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...stored };
  for (const [field, names] of Object.entries(TLS_PLACES)) {
    const place = out[field];
    if (typeof place === "number") out[field] = names[place];
  }
  return renamed(out, LONG_TLS);
}
/** Where the id stood; no field has a one-letter name, so it also marks the stored form. */
const ID_PLACE = "i";
/** Where `at` is stored as its distance from the time the event's id encodes. */
const AT_SINCE_ID = "A";
const LONG = fieldNames(SHORT).long;
const LONG_TLS = fieldNames(SHORT_TLS).long;

/**
 * `event` as stored under a key that ends in its id. `tls` is left out where it is the version
 * `tlsDetails` holds (a delivery's session sets both), and marked absent (0) where it is missing
 * beside them.
 */
export function storedEvent(event: MessageEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const details = event.tlsDetails;
  if (details && event.tls === undefined) out[SHORT.tls!] = 0;
  const since = sinceBase(event.at, idTime(event.id));
  const fields = event as unknown as Record<string, unknown>;
  for (const k in fields) { // for…in, as in compact.ts `renamed`: no pairs built per field
    const v = fields[k];
    if (k === "id") out[ID_PLACE] = 0;
    else if (k === "tls" && details && v === details.version) continue;
    else if (k === "type" && EVENT_TYPES.includes(v as EventType)) {
      out[SHORT.type!] = EVENT_TYPES.indexOf(v as EventType);
    } else if (k === "at" && since !== null) out[AT_SINCE_ID] = since;
    else if (k === "tlsDetails" && v && typeof v === "object") {
      out[SHORT.tlsDetails!] = storedTls(v);
    } else out[SHORT[k] ?? k] = v;
  }
  return out;
}

/** The event stored under `key` (["evlog", account, id] or ["ev", msgId, id]). */
export function eventOf(key: Deno.KvKey, value: unknown): MessageEvent {
  const v = value as Record<string, unknown>;
  if (!v || typeof v !== "object" || !(ID_PLACE in v)) return value as MessageEvent;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === ID_PLACE) out.id = key[2];
    else if (k === AT_SINCE_ID) out.at = idTime(key[2] as string)! + (x as number);
    else if (k === SHORT.type && typeof x === "number") out.type = EVENT_TYPES[x];
    else if (k === SHORT.tlsDetails && x && typeof x === "object") out.tlsDetails = tlsOf(x);
    else if (k !== SHORT.tls || x !== 0) out[LONG[k] ?? k] = x;
  }
  const details = out.tlsDetails as MessageEvent["tlsDetails"];
  if (details && !(SHORT.tls! in v)) out.tls = details.version;
  return out as unknown as MessageEvent;
}

/** Stamps `event` with a fresh, time-ordered id; call inside `Change.apply`. */
export function stampEvent(event: Omit<MessageEvent, "id">): MessageEvent {
  return { ...event, id: monotonicId() } as MessageEvent;
}

/**
 * Adds one event to a commit: the account log. The commit must also write the event's id into
 * the message record or a recipient row (`events`), or the timeline does not find it.
 */
export function putEvent(op: Deno.AtomicOperation, account: string, event: MessageEvent) {
  op.set(keys.accountEvent(account, event.id), storedEvent(event));
}

/** Adds an event that no record in its commit lists: in the log and under its message. */
export function putUnlistedEvent(op: Deno.AtomicOperation, account: string, event: MessageEvent) {
  // One stored form for both keys (each ends in the event's id).
  const stored = storedEvent(event);
  op.set(keys.accountEvent(account, event.id), stored);
  op.set(keys.event(event.msgId, event.id), stored);
}

/** `row` with the id of an event of its commit added to its timeline. */
export function withEvent<T extends { events?: string[] }>(row: T, eventId: string): T {
  return { ...row, events: [...(row.events ?? []), eventId] };
}

/** Every event key of a message: its account-log entries and its own timeline entries. */
export async function messageEventKeys(
  kv: Deno.Kv,
  msg: MessageRecord,
  rows: readonly RecipientRow[],
): Promise<Deno.KvKey[]> {
  const ids = new Set([...(msg.events ?? []), ...rows.flatMap((r) => r.events ?? [])]);
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: keys.eventPrefix(msg.id) })) {
    out.push(e.key);
    ids.add(e.key[2] as string);
  }
  for (const id of ids) out.push(keys.accountEvent(msg.account, id));
  return out;
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
    ? kv.list({ start, end }, { batchSize: Math.min(500, options.limit + 1) })
    : kv.list({ prefix, end }, { batchSize: Math.min(500, options.limit + 1) });
  for await (const entry of iter) {
    const id = entry.key[2] as string;
    if (id === options.after) continue;
    if (events.length >= options.limit || scanned >= maxScan) {
      return { events, last, more: true };
    }
    scanned++;
    last = id;
    const event = eventOf(entry.key, entry.value);
    if (!options.types || options.types.has(event.type)) events.push(event);
  }
  return { events, last, more: false };
}

/** The message timeline: every event of one message, oldest first. */
export async function listMessageEvents(kv: Deno.Kv, msgId: string): Promise<MessageEvent[]> {
  const byId = new Map<string, MessageEvent>();
  for await (const e of kv.list({ prefix: keys.eventPrefix(msgId) })) {
    const event = eventOf(e.key, e.value);
    byId.set(event.id, event);
  }
  const msg = await loadMessage(kv, msgId);
  if (msg) {
    const rows = await listRows(kv, msgId);
    const ids = [...(msg.events ?? []), ...rows.flatMap((r) => r.events ?? [])]
      .filter((id) => !byId.has(id));
    for (let i = 0; i < ids.length; i += 10) {
      const batch = ids.slice(i, i + 10).map((id) => keys.accountEvent(msg.account, id));
      for (const e of await kv.getMany(batch)) {
        if (e.value) {
          const event = eventOf(e.key, e.value);
          byId.set(event.id, event);
        }
      }
    }
  }
  return [...byId.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
