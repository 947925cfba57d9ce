/**
 * Message records (["msg", id]) and recipient rows (["rcpt", id, idx]) as stored: under short
 * field names (compact.ts says why), without what their key holds (the id; the message id and
 * index), and without the values a reader restores: a creation time equal to the one the id
 * encodes, a null credential, SMTP as the way in, a row's domain when it is its address's, a null
 * next attempt; a row's update time is kept as its distance from its queue time. Every
 * message writes its record once and its row twice (at acceptance and at delivery). A record or
 * row stored before (under long names; a row whole) is read as it is.
 */
import { idTime } from "../ids.ts";
import { domainOf } from "../mail/address.ts";
import type { MessageRecord, RecipientRow } from "../model.ts";
import { fieldNames, renamed, sinceBase } from "./compact.ts";

/** `prefix` keeps its name: tools read a record's DKIM-Signature fields by it. */
const MESSAGE = fieldNames({
  account: "a",
  mailFrom: "f",
  size: "s",
  chunks: "k",
  spooled: "sp",
  recipients: "n",
  createdAt: "t",
  credentialId: "c",
  clientAddress: "ip",
  via: "v",
  messageId: "m",
  subject: "j",
  tags: "g",
  metadata: "md",
  verp: "vp",
  returnPath: "rp",
  pool: "pl",
  test: "x",
  events: "e",
  bodyInDue: "b",
});

/** `status` keeps its name: tools read a row's status straight from the store. */
const ROW = fieldNames({
  rcpt: "r",
  domain: "d",
  attempts: "a",
  queuedAt: "q",
  nextAttemptAt: "n",
  lastReply: "p",
  lastCategory: "c",
  lastSource: "l",
  updatedAt: "U",
  events: "e",
});
/** Where a row's update time is stored as its distance from its queue time. */
const UPDATED_SINCE_QUEUED = "u";

/** A message record as stored under ["msg", msg.id]. */
export function storedMessage(msg: MessageRecord): Record<string, unknown> {
  const created = idTime(msg.id);
  return renamed(msg, MESSAGE.short, (field, value) =>
    field === "id" ||
    (field === "createdAt" && value === created) ||
    (field === "credentialId" && value === null) ||
    (field === "via" && value === "smtp"));
}

/** The message record stored under `key` (["msg", id]), whole. */
export function messageOf(key: Deno.KvKey, value: unknown): MessageRecord {
  const v = value as Record<string, unknown>;
  if (!isObject(v) || "account" in v) return value as MessageRecord; // stored under long names
  const id = key[1] as string;
  const out: Record<string, unknown> = {
    id,
    createdAt: idTime(id),
    credentialId: null,
    via: "smtp",
  };
  for (const [k, x] of Object.entries(v)) out[MESSAGE.long[k] ?? k] = x;
  return out as unknown as MessageRecord;
}

/** A recipient row as stored under ["rcpt", msgId, idx]. */
export type StoredRow = Record<string, unknown>;

/** `row` as stored under ["rcpt", row.msgId, row.idx]. */
export function storedRow(row: RecipientRow): StoredRow {
  const queued = idTime(row.msgId);
  const updated = sinceBase(row.updatedAt, row.queuedAt);
  const out = renamed(row, ROW.short, (field, value) =>
    field === "msgId" || field === "idx" ||
    (field === "domain" && value === domainOf(row.rcpt)) ||
    (field === "queuedAt" && value === queued) ||
    (field === "nextAttemptAt" && value === null) ||
    (field === "updatedAt" && updated !== null));
  if (updated !== null) out[UPDATED_SINCE_QUEUED] = updated;
  return out;
}

/**
 * The row stored under `key`, whole again: a row written before rows were slimmed is whole, one
 * written before they were renamed lacks only its message id and index.
 */
export function rowOf(key: Deno.KvKey, value: unknown): RecipientRow {
  const msgId = key[1] as string;
  const idx = key[2] as number;
  const v = value as Record<string, unknown>;
  if (!isObject(v) || "rcpt" in v) return { msgId, idx, ...v } as unknown as RecipientRow;
  const out: Record<string, unknown> = { msgId, idx, queuedAt: idTime(msgId), nextAttemptAt: null };
  for (const [k, x] of Object.entries(v)) {
    if (k === UPDATED_SINCE_QUEUED) continue;
    out[ROW.long[k] ?? k] = x;
  }
  out.domain ??= domainOf(out.rcpt as string);
  const since = v[UPDATED_SINCE_QUEUED];
  if (typeof since === "number") out.updatedAt = (out.queuedAt as number) + since;
  return out as unknown as RecipientRow;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}
