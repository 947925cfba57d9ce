/**
 * Due entries, built in one place: how a message's recipients at one domain are split over due
 * entries, and each entry's key and value. Each due entry becomes one SMTP transaction and one
 * attempt commit, which writes three keys per recipient (row, timeline event, account log event)
 * under KV's 1000-mutation cap; 100 recipients per transaction is also what RFC 5321 §4.5.3.1.8
 * says every server must accept. Intake, a hold's release and an attempt that defers file their
 * entries here, and return them to the worker, which offers them to actors in memory as they are.
 */
import { keys } from "./keys.ts";
import { type DueEntry, dueValue } from "./queue.ts";

export const MAX_RECIPIENTS_PER_DUE = 100;

/** `idxs` in order, cut into groups of at most MAX_RECIPIENTS_PER_DUE. */
export function dueGroups<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_RECIPIENTS_PER_DUE) {
    out.push(items.slice(i, i + MAX_RECIPIENTS_PER_DUE));
  }
  return out;
}

/** A due entry before the commit that writes it (and so its versionstamp) is known. */
export type FiledDue = Omit<DueEntry, "versionstamp">;

/**
 * The due entries for recipients `idxs` of message `msgId` at `domain`, due at `dueAt`: one per
 * group, each keyed by its group's lowest recipient index, each carrying `body` when the
 * message's body rides in its due entry (MessageRecord.bodyInDue), and with it `prefix` when the
 * message's prefix rides along too.
 */
export function dueEntries(
  domain: string,
  dueAt: number,
  msgId: string,
  idxs: readonly number[],
  body?: Uint8Array,
  prefix?: string,
): FiledDue[] {
  return dueGroups([...idxs].sort((a, b) => a - b)).map((rcpts) => ({
    key: keys.due(domain, dueAt, msgId, rcpts[0]!),
    domain,
    dueAt,
    msgId,
    rcpts,
    ...(body ? { body } : {}),
    ...(body && prefix ? { prefix } : {}),
  }));
}

/** Adds the set that files `due` to a commit. */
export function putDue(op: Deno.AtomicOperation, due: FiledDue) {
  op.set(due.key, dueValue(due.rcpts, due.body, due.prefix));
}

/** `filed` as written by the commit whose versionstamp is `versionstamp`. */
export function written(filed: readonly FiledDue[], versionstamp: string): DueEntry[] {
  return filed.map((d) => ({ ...d, versionstamp }));
}
