/**
 * Reading the durable queue: due entries per destination, and the records they point at.
 * A due entry is inert until its message record exists (intake may write large recipient lists
 * ahead of the message commit).
 */
import { keys } from "./keys.ts";
import { messageOf, rowOf } from "./records.ts";
import type { MessageRecord, RecipientRow } from "../model.ts";

export interface DueEntry {
  key: Deno.KvKey;
  versionstamp: string;
  domain: string;
  dueAt: number;
  msgId: string;
  rcpts: number[];
  /** The message's body, when it rides in its due entry (MessageRecord.bodyInDue). */
  body?: Uint8Array;
  /**
   * The message's `prefix` (its DKIM-Signature fields), when it rides with the body: then the
   * message record does not hold it (core/store/messages.ts says why).
   */
  prefix?: string;
}

/** A due entry's value. */
export interface DueValue {
  rcpts: number[];
  body?: Uint8Array;
  prefix?: string;
}

/**
 * The value of a due entry for `rcpts`, carrying `body` when the message's body rides along, and
 * with it the message's `prefix`.
 */
export function dueValue(
  rcpts: number[],
  body: Uint8Array | undefined,
  prefix?: string,
): DueValue {
  if (!body) return { rcpts };
  return prefix ? { rcpts, body, prefix } : { rcpts, body };
}

function toDue(e: Deno.KvEntry<DueValue>): DueEntry {
  const [, domain, dueAt, msgId] = e.key as [string, string, number, string, number];
  return {
    key: e.key,
    versionstamp: e.versionstamp,
    domain,
    dueAt,
    msgId,
    rcpts: e.value.rcpts,
    ...(e.value.body ? { body: e.value.body } : {}),
    ...(e.value.prefix ? { prefix: e.value.prefix } : {}),
  };
}

export async function listDue(
  kv: Deno.Kv,
  domain: string,
  now: number,
  limit: number,
): Promise<DueEntry[]> {
  const out: DueEntry[] = [];
  const iter = kv.list<DueValue>({
    start: keys.duePrefix(domain),
    end: [...keys.duePrefix(domain), now + 1],
  }, { limit });
  for await (const e of iter) out.push(toDue(e));
  return out;
}

/** The earliest due time for a destination, or null when nothing is queued for it. */
export async function nextDueAt(kv: Deno.Kv, domain: string): Promise<number | null> {
  for await (const e of kv.list({ prefix: keys.duePrefix(domain) }, { limit: 1 })) {
    return e.key[2] as number;
  }
  return null;
}

/** The earliest due time after `after`, or null when nothing later is queued. */
export async function nextDueAfter(
  kv: Deno.Kv,
  domain: string,
  after: number,
): Promise<number | null> {
  const iter = kv.list({
    prefix: keys.duePrefix(domain),
    start: [...keys.duePrefix(domain), after + 1],
  }, { limit: 1 });
  for await (const e of iter) return e.key[2] as number;
  return null;
}

/**
 * A destination's queue marker (["queue", domain]) tells every node's poll that the domain has
 * work, and its `touchedAt` that new work came. Rewriting it with every message would be a
 * mutation per message on one shared key, so a node writes it at most once per
 * {@linkcode MARKER_REFRESH_MS} per domain: the first message after a quiet spell still touches it
 * at once. This node's retirement of a marker forgets it here, so the next message writes it again.
 */
export const MARKER_REFRESH_MS = 5_000;
/** Polls between full scans of the due entries for domains whose marker went missing. */
const ORPHAN_SCAN_EVERY = 12;

interface MarkerState {
  /** When this node last wrote each domain's marker (the `touchedAt` it wrote). */
  written: Map<string, number>;
  polls: number;
}

/** Per store: tests run several relays' stores in one process. */
const markerStates = new WeakMap<Deno.Kv, MarkerState>();

function markerState(kv: Deno.Kv): MarkerState {
  let state = markerStates.get(kv);
  if (!state) markerStates.set(kv, state = { written: new Map(), polls: 0 });
  return state;
}

/** The domains whose marker a commit queuing work for `domains` at `at` should write. */
export function markersDue(kv: Deno.Kv, domains: Iterable<string>, at: number): string[] {
  const { written } = markerState(kv);
  return [...domains].filter((domain) => {
    const last = written.get(domain);
    return last === undefined || at < last || at - last >= MARKER_REFRESH_MS;
  });
}

/** Adds the marker writes {@linkcode markersDue} chose to a commit. */
export function setMarkersOp(op: Deno.AtomicOperation, domains: readonly string[], at: number) {
  for (const domain of domains) op.set(keys.queue(domain), { touchedAt: at });
}

/** The commit that wrote markers for `domains` at `at` landed. */
export function markersWritten(kv: Deno.Kv, domains: readonly string[], at: number) {
  const { written } = markerState(kv);
  for (const domain of domains) {
    if ((written.get(domain) ?? -Infinity) < at) written.set(domain, at);
  }
}

/**
 * The destinations with work: their markers, and every {@linkcode ORPHAN_SCAN_EVERY}th call (the
 * first included) also domains that have due entries but no marker, which another node's
 * retirement racing a message this node queued without rewriting the marker can leave. `all`
 * looks for those now, outside the poll's count: for an operator who names a site to act on.
 */
export async function listQueuedDestinations(
  kv: Deno.Kv,
  options: { all?: boolean } = {},
): Promise<Deno.KvEntry<unknown>[]> {
  const out: Deno.KvEntry<unknown>[] = [];
  for await (const e of kv.list({ prefix: keys.queuePrefix() })) out.push(e);
  const state = markerState(kv);
  if (!options.all && state.polls++ % ORPHAN_SCAN_EVERY !== 0) return out;
  const marked = new Set(out.map((e) => e.key[1] as string));
  for (const entry of await firstDuePerDomain(kv)) {
    const domain = entry.key[1] as string;
    if (marked.has(domain)) continue;
    out.push({ ...entry, key: keys.queue(domain), value: { touchedAt: entry.key[2] as number } });
  }
  return out;
}

/** The earliest due entry of each domain: one read per domain, skipping over the rest. */
async function firstDuePerDomain(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
  const out: Deno.KvEntry<unknown>[] = [];
  const prefix = keys.dueAllPrefix();
  // No start at first: KV refuses a start equal to the prefix (it must lie inside it), and that
  // refusal failed the whole poll, so no domain was found this way at all.
  let start: Deno.KvKey | undefined;
  for (;;) {
    let found: Deno.KvEntry<unknown> | null = null;
    for await (const e of kv.list(start ? { prefix, start } : { prefix }, { limit: 1 })) found = e;
    if (!found) return out;
    out.push(found);
    // A domain followed by NUL sorts right after every key of that domain.
    start = [...prefix, `${found.key[1] as string}\0`];
  }
}

/**
 * Removes a destination's queue marker once nothing is due for it; false when work remains.
 * Intake re-sets the marker when it queues new work, so the marker's check makes the race safe.
 */
export async function retireDestination(kv: Deno.Kv, domain: string): Promise<boolean> {
  const marker = await kv.get(keys.queue(domain));
  if ((await nextDueAt(kv, domain)) !== null) return false;
  // Forgotten first: a message queued from now on writes the marker again.
  markerState(kv).written.delete(domain);
  if (marker.versionstamp === null) return true;
  const res = await kv.atomic().check(marker).delete(keys.queue(domain)).commit();
  return res.ok;
}

/**
 * A claimed due entry as it stands now, with its message (its `prefix` from the entry where it
 * rides there): `current` is false when the entry
 * changed or went since it was listed (an attempt recorded meanwhile deletes it); `staged` says
 * the message is being written ahead of its commit. One read, so the three agree: read apart,
 * a message commit landing between "no message" and "no staged marker" made a live entry look
 * orphaned, and it was dropped unsent.
 */
export async function readClaimedDue(
  kv: Deno.Kv,
  due: DueEntry,
): Promise<{ current: boolean; msg: MessageRecord | null; staged: boolean }> {
  const [entry, record, staged] = await kv.getMany([
    due.key,
    keys.message(due.msgId),
    keys.staged(due.msgId),
  ]);
  const msg = record.value === null ? null : messageOf(record.key, record.value);
  // A current entry holds what `due` was listed with.
  if (msg && due.prefix) msg.prefix = due.prefix;
  return {
    current: entry.versionstamp === due.versionstamp,
    msg,
    staged: staged.versionstamp !== null,
  };
}

/**
 * Deletes a due entry whose message was never committed (written ahead of an intake that then
 * failed), unless the entry changed or the message has appeared since.
 */
export async function dropOrphanDue(kv: Deno.Kv, due: DueEntry): Promise<void> {
  await kv.atomic()
    .check({ key: due.key, versionstamp: due.versionstamp })
    .check({ key: keys.message(due.msgId), versionstamp: null })
    .delete(due.key)
    .commit();
}

/** Deletes a due entry unless it changed since it was listed. */
export async function dropDue(kv: Deno.Kv, due: DueEntry): Promise<void> {
  await kv.atomic().check({ key: due.key, versionstamp: due.versionstamp }).delete(due.key)
    .commit();
}

export async function loadMessage(kv: Deno.Kv, id: string): Promise<MessageRecord | null> {
  const e = await kv.get(keys.message(id));
  return e.value === null ? null : messageOf(e.key, e.value);
}

/** The records of `ids` that exist, by id. */
export async function loadMessages(
  kv: Deno.Kv,
  ids: readonly string[],
): Promise<Map<string, MessageRecord>> {
  const out = new Map<string, MessageRecord>();
  for (let i = 0; i < ids.length; i += 10) {
    const entries = await kv.getMany(ids.slice(i, i + 10).map(keys.message));
    for (const e of entries) if (e.value) out.set(e.key[1] as string, messageOf(e.key, e.value));
  }
  return out;
}

export async function loadRows(
  kv: Deno.Kv,
  id: string,
  idxs: readonly number[],
): Promise<RecipientRow[]> {
  const out: RecipientRow[] = [];
  for (let i = 0; i < idxs.length; i += 10) {
    const entries = await kv.getMany(
      idxs.slice(i, i + 10).map((idx) => keys.recipient(id, idx)),
    );
    for (const e of entries) if (e.value) out.push(rowOf(e.key, e.value));
  }
  return out;
}

export async function listRows(kv: Deno.Kv, id: string): Promise<RecipientRow[]> {
  const out: RecipientRow[] = [];
  for await (const e of kv.list({ prefix: keys.recipientPrefix(id) })) {
    out.push(rowOf(e.key, e.value));
  }
  return out;
}
