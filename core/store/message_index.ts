/**
 * Log search without scans of the whole store. The message commit writes one index key per
 * searchable fact — sender, each recipient, each tag, the submitting credential — each ending in
 * the message id, so a search walks one index's range for its most selective term, newest first,
 * and only checks the other terms on the messages that range yields. Time needs no index of its
 * own: message ids are time-ordered, so a search by time alone walks the message records
 * themselves (["msg", id]) over its range. Those are every account's, so where several accounts
 * share a store such a search skips the others' messages, within `maxScan`. (Older stores also
 * hold a per-account time index, ["idx_time", account, id], which retention still removes.) Cost follows the matches, not the number of
 * stored messages. Status and subject have no index: they are checked on the candidates the other
 * terms yield, so a search that has to skip many of them (a rare status, an unusual subject) stops
 * after `maxScan` and hands back a cursor to go on from.
 */
import { keys } from "./keys.ts";
import { idTimePrefix } from "../ids.ts";
import type { MessageRecord, RecipientRow, RecipientStatus } from "../model.ts";
import { listRows, loadRows } from "./queue.ts";
import { messageOf } from "./records.ts";
import { subjectContains } from "../mail/subject_match.ts";

/** Recipient index entries: they may be written ahead with the rows of a huge recipient list. */
export function recipientIndexEntries(
  msg: MessageRecord,
  rows: readonly RecipientRow[],
): [Deno.KvKey, true][] {
  const seen = new Set<string>();
  const out: [Deno.KvKey, true][] = [];
  for (const row of rows) {
    const rcpt = row.rcpt.toLowerCase();
    if (seen.has(rcpt)) continue;
    seen.add(rcpt);
    out.push([keys.indexRecipient(msg.account, rcpt, msg.id), true]);
  }
  return out;
}

/** Sender, tag and credential index entries; they ride in the message commit itself. */
export function putMessageIndex(op: Deno.AtomicOperation, msg: MessageRecord) {
  for (const key of commitIndexKeys(msg)) op.set(key, true);
}

function commitIndexKeys(msg: MessageRecord): Deno.KvKey[] {
  return [
    keys.indexFrom(msg.account, msg.mailFrom.toLowerCase(), msg.id),
    ...(msg.tags ?? []).map((tag) => keys.indexTag(msg.account, tag, msg.id)),
    ...(msg.credentialId ? [keys.indexCredential(msg.account, msg.credentialId, msg.id)] : []),
  ];
}

/** Every index key of a message, for the retention sweeper. */
export function messageIndexKeys(msg: MessageRecord, rows: readonly RecipientRow[]): Deno.KvKey[] {
  return [
    // A record without `events` was written before the time index went (see the module comment).
    ...(msg.events === undefined ? [keys.indexTime(msg.account, msg.id)] : []),
    ...commitIndexKeys(msg),
    ...recipientIndexEntries(msg, rows).map(([key]) => key),
  ];
}

export interface SearchQuery {
  account: string;
  recipient?: string;
  from?: string;
  tag?: string;
  /** The id of the credential that submitted the message. */
  credential?: string;
  /**
   * Case-insensitive substring of the subject (as written or as read: see subject_match.ts).
   * Not indexed: checked on the candidates, within `maxScan`.
   */
  subject?: string;
  /** A recipient of the message has this status. */
  status?: RecipientStatus;
  /** Inclusive, ms. */
  since?: number;
  /** Exclusive, ms. */
  until?: number;
  /** The last message id of the previous page: the search goes on below it. */
  cursor?: string;
  limit: number;
  /** Index entries to look at before handing back a cursor. @default DEFAULT_MAX_SCAN */
  maxScan?: number;
}

export interface SearchHit {
  msg: MessageRecord;
  rows: RecipientRow[];
}

export interface SearchResult {
  hits: SearchHit[];
  /** Where the next page starts; null when the range is exhausted. */
  nextCursor: string | null;
  /** Index entries read: what the search cost. */
  scanned: number;
}

function driver(q: SearchQuery): Deno.KvKey {
  if (q.recipient) return ["idx_rcpt", q.account, q.recipient.toLowerCase()];
  if (q.from) return ["idx_from", q.account, q.from.toLowerCase()];
  if (q.tag) return ["idx_tag", q.account, q.tag];
  if (q.credential) return ["idx_cred", q.account, q.credential];
  return keys.messagePrefix();
}

function selector(prefix: Deno.KvKey, q: SearchQuery): Deno.KvListSelector {
  const lower = q.since !== undefined ? idTimePrefix(q.since) : undefined;
  let upper = q.until !== undefined ? idTimePrefix(q.until) : undefined;
  if (q.cursor && (upper === undefined || q.cursor < upper)) upper = q.cursor;
  if (lower !== undefined && upper !== undefined) {
    return { start: [...prefix, lower], end: [...prefix, upper] };
  }
  if (lower !== undefined) return { prefix, start: [...prefix, lower] };
  if (upper !== undefined) return { prefix, end: [...prefix, upper] };
  return { prefix };
}

/** Index entries a search looks at before handing back a cursor, unless told otherwise. */
export const DEFAULT_MAX_SCAN = 5000;

const CANDIDATE_BATCH = 50;

export async function searchMessages(kv: Deno.Kv, q: SearchQuery): Promise<SearchResult> {
  const prefix = driver(q);
  const maxScan = q.maxScan ?? DEFAULT_MAX_SCAN;
  const hits: SearchHit[] = [];
  let scanned = 0;
  let lastScanned: string | null = null;
  let batch: string[] = [];
  /** Records the walk itself read (a search by time walks the records). */
  const known = new Map<string, MessageRecord>();

  // A batch's candidates are read ten to a round trip, all round trips at once, then taken in
  // index order, so the page and its cursor are what a one-by-one walk would give.
  const flush = async (): Promise<boolean> => {
    const checked = await checkBatch(kv, q, batch, known);
    for (let i = 0; i < batch.length; i++) {
      const hit = checked[i];
      if (hit) hits.push(hit);
      if (hits.length >= q.limit) {
        lastScanned = batch[i]!;
        return true;
      }
    }
    batch = [];
    known.clear();
    return false;
  };

  const iter = kv.list(selector(prefix, q), {
    reverse: true,
    batchSize: CANDIDATE_BATCH,
  });
  for await (const entry of iter) {
    const msgId = entry.key[entry.key.length - 1] as string;
    if (entry.value !== true) known.set(msgId, messageOf(entry.key, entry.value));
    scanned++;
    lastScanned = msgId;
    batch.push(msgId);
    if (batch.length >= CANDIDATE_BATCH && await flush()) {
      return { hits, nextCursor: lastScanned, scanned };
    }
    if (scanned >= maxScan) {
      await flush();
      return { hits, nextCursor: lastScanned, scanned };
    }
  }
  if (await flush()) return { hits, nextCursor: lastScanned, scanned };
  return { hits, nextCursor: null, scanned };
}

/** Rows of messages with at most this many recipients are read by key, in one round trip. */
const ROWS_BY_KEY = 10;

/** Each candidate as a hit, or null where it does not match. */
async function checkBatch(
  kv: Deno.Kv,
  q: SearchQuery,
  ids: readonly string[],
  known: ReadonlyMap<string, MessageRecord>,
): Promise<(SearchHit | null)[]> {
  const unknown = ids.filter((id) => !known.has(id));
  const chunks: string[][] = [];
  for (let i = 0; i < unknown.length; i += 10) chunks.push(unknown.slice(i, i + 10));
  const read = new Map(
    (await Promise.all(
      chunks.map((c) => kv.getMany(c.map((id) => keys.message(id)))),
    )).flat().map((e) => [e.key[1] as string, e.value === null ? null : messageOf(e.key, e.value)]),
  );
  const msgs = ids.map((id) => known.get(id) ?? read.get(id) ?? null);
  return await Promise.all(ids.map(async (msgId, i): Promise<SearchHit | null> => {
    const msg = await matchMessage(kv, q, msgs[i] ?? null, msgId);
    if (!msg) return null;
    const rows = msg.recipients <= ROWS_BY_KEY
      ? await loadRows(kv, msgId, Array.from({ length: msg.recipients }, (_, n) => n))
      : await listRows(kv, msgId);
    return !q.status || rows.some((r) => r.status === q.status) ? { msg, rows } : null;
  }));
}

/** The message when it exists and matches the terms the driving index did not. */
async function matchMessage(
  kv: Deno.Kv,
  q: SearchQuery,
  msg: MessageRecord | null,
  msgId: string,
): Promise<MessageRecord | null> {
  if (!msg || msg.account !== q.account) return null; // an entry written ahead of a lost commit
  if (q.from && msg.mailFrom.toLowerCase() !== q.from.toLowerCase()) return null;
  if (q.tag && !(msg.tags ?? []).includes(q.tag)) return null;
  if (q.credential && msg.credentialId !== q.credential) return null;
  if (q.subject && !subjectContains(msg.subject, q.subject)) return null;
  if (q.recipient) {
    const hit = await kv.get(keys.indexRecipient(q.account, q.recipient.toLowerCase(), msgId));
    if (hit.value === null) return null;
  }
  return msg;
}
