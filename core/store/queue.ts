/**
 * Reading the durable queue: due entries per destination, and the records they point at.
 * A due entry is inert until its message record exists (intake may write large recipient lists
 * ahead of the message commit).
 */
import { keys } from "./keys.ts";
import type { MessageRecord, RecipientRow } from "../model.ts";

export interface DueEntry {
  key: Deno.KvKey;
  versionstamp: string;
  domain: string;
  dueAt: number;
  msgId: string;
  rcpts: number[];
}

function toDue(e: Deno.KvEntry<{ rcpts: number[] }>): DueEntry {
  const [, domain, dueAt, msgId] = e.key as [string, string, number, string, number];
  return { key: e.key, versionstamp: e.versionstamp, domain, dueAt, msgId, rcpts: e.value.rcpts };
}

export async function listDue(
  kv: Deno.Kv,
  domain: string,
  now: number,
  limit: number,
): Promise<DueEntry[]> {
  const out: DueEntry[] = [];
  const iter = kv.list<{ rcpts: number[] }>({
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

export async function listQueuedDestinations(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
  const out: Deno.KvEntry<unknown>[] = [];
  for await (const e of kv.list({ prefix: keys.queuePrefix() })) out.push(e);
  return out;
}

export async function loadMessage(kv: Deno.Kv, id: string): Promise<MessageRecord | null> {
  return (await kv.get<MessageRecord>(keys.message(id))).value;
}

export async function isStaged(kv: Deno.Kv, id: string): Promise<boolean> {
  return (await kv.get(keys.staged(id))).value !== null;
}

export async function loadRows(
  kv: Deno.Kv,
  id: string,
  idxs: readonly number[],
): Promise<RecipientRow[]> {
  const out: RecipientRow[] = [];
  for (let i = 0; i < idxs.length; i += 10) {
    const entries = await kv.getMany<RecipientRow[]>(
      idxs.slice(i, i + 10).map((idx) => keys.recipient(id, idx)),
    );
    for (const e of entries) if (e.value) out.push(e.value);
  }
  return out;
}

export async function listRows(kv: Deno.Kv, id: string): Promise<RecipientRow[]> {
  const out: RecipientRow[] = [];
  for await (const e of kv.list<RecipientRow>({ prefix: keys.recipientPrefix(id) })) {
    out.push(e.value);
  }
  return out;
}
