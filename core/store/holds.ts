/**
 * The hold queue. A message the content scan held is committed like any other (body, record,
 * rows, `accepted`), but its rows are `held` with no due entries, so no actor ever sees them; a
 * hold record beside it says why (score, symbols) and until when. Releasing moves the rows to
 * `queued` and files their due entries in one commit; dropping (an operator, a recheck, expiry)
 * makes them `dropped`, a final state retention later removes. Both delete the hold record under
 * a check on its versionstamp, so a release racing a drop or the expiry sweep happens once.
 *
 * @module
 */
import { keys } from "./keys.ts";
import type { Committer } from "./committer.ts";
import { type DueEntry, listRows, loadMessage, setMarkersOp } from "./queue.ts";
import { storedRow } from "./records.ts";
import { dueEntries, putDue, written } from "./due_groups.ts";
import { putUnlistedEvent } from "./events.ts";
import { monotonicId } from "../ids.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "../model.ts";

export interface HoldRecord {
  msgId: string;
  account: string;
  credentialId: string | null;
  score: number;
  /** Names of the symbols that matched, highest score first. */
  symbols: string[];
  heldAt: number;
  /** Dropped as expired after this (POSTERN_HOLD_EXPIRY). */
  expiresAt: number;
  /** When a recheck last scanned it. */
  recheckedAt?: number;
}

export function putHold(op: Deno.AtomicOperation, hold: HoldRecord) {
  op.set(keys.hold(hold.msgId), hold);
}

export async function getHold(kv: Deno.Kv, msgId: string): Promise<HoldRecord | null> {
  return (await kv.get<HoldRecord>(keys.hold(msgId))).value;
}

/** Held messages, oldest first: one account's, or every account's (account null). */
export async function listHolds(
  kv: Deno.Kv,
  account: string | null,
  limit = 1000,
): Promise<HoldRecord[]> {
  const out: HoldRecord[] = [];
  for await (const e of kv.list<HoldRecord>({ prefix: keys.holdPrefix() })) {
    if (account === null || e.value.account === account) out.push(e.value);
    if (out.length >= limit) break;
  }
  return out;
}

/** Recipients per commit when a release or drop moves rows (KV caps a commit at 1000 mutations). */
const ROWS_PER_COMMIT = 200;

export type HoldOutcome =
  | {
    ok: true;
    msg: MessageRecord;
    rows: RecipientRow[];
    versionstamp: string;
    /** The due entries a release filed, each with the versionstamp of the commit that wrote it. */
    due: DueEntry[];
  }
  | { ok: false; reason: "not_found" | "conflict" };

/**
 * Moves a held message's rows to `status` in commits of ROWS_PER_COMMIT; the last commit deletes
 * the hold record under a check, so only one of two racing outcomes lands it. Rows already
 * moved by an earlier, interrupted call are skipped (only `held` rows move).
 */
async function settle(
  kv: Deno.Kv,
  committer: Committer,
  msgId: string,
  event: Omit<MessageEvent, "id" | "msgId" | "at">,
  now: number,
  status: "queued" | "dropped",
): Promise<HoldOutcome> {
  const entry = await kv.get<HoldRecord>(keys.hold(msgId));
  const msg = await loadMessage(kv, msgId);
  if (!entry.value || !msg) return { ok: false, reason: "not_found" };
  const held = (await listRows(kv, msgId)).filter((r) => r.status === "held");
  const moved: RecipientRow[] = held.map((r) => ({
    ...r,
    status,
    nextAttemptAt: status === "queued" ? now : null,
    updatedAt: now,
    ...(status === "dropped" ? { lastReply: event.reply ?? "Dropped from the hold queue" } : {}),
  }));
  let versionstamp = "";
  const due: DueEntry[] = [];
  for (let i = 0; i === 0 || i < moved.length; i += ROWS_PER_COMMIT) {
    const batch = moved.slice(i, i + ROWS_PER_COMMIT);
    const last = i + ROWS_PER_COMMIT >= moved.length;
    const byDomain = new Map<string, number[]>();
    if (status === "queued") {
      for (const row of batch) {
        byDomain.set(row.domain, [...(byDomain.get(row.domain) ?? []), row.idx]);
      }
    }
    // Due at the message's own time, as intake files them.
    const filed = [...byDomain].flatMap(([domain, idxs]) =>
      dueEntries(domain, msg.createdAt, msgId, idxs)
    );
    const stamp = await committer.commit({
      apply(op) {
        for (const row of batch) op.set(keys.recipient(msgId, row.idx), storedRow(row));
        for (const d of filed) putDue(op, d);
        setMarkersOp(op, [...byDomain.keys()], now);
        if (last) {
          op.check(entry);
          op.delete(keys.hold(msgId));
          // Rare, and the rows go on to delivery from memory: kept under the message itself.
          putUnlistedEvent(op, msg.account, { ...event, msgId, at: now, id: monotonicId() });
        }
      },
    });
    if (stamp === null) return { ok: false, reason: "conflict" };
    versionstamp = stamp;
    due.push(...written(filed, stamp));
  }
  return { ok: true, msg, rows: moved, versionstamp, due };
}

/** Queues a held message for delivery (event `released`); the caller rings the queue signal. */
export function releaseHold(kv: Deno.Kv, committer: Committer, msgId: string, now: number) {
  return settle(kv, committer, msgId, { type: "released" }, now, "queued");
}

/** Drops a held message (event `dropped`): its recipients end `dropped`, nothing is sent. */
export function dropHold(
  kv: Deno.Kv,
  committer: Committer,
  msgId: string,
  now: number,
  why: string,
) {
  return settle(kv, committer, msgId, { type: "dropped", reply: why }, now, "dropped");
}

/** A recheck that still holds: the new score and symbols, and the old record's expiry. */
export async function updateHold(
  kv: Deno.Kv,
  msgId: string,
  change: Pick<HoldRecord, "score" | "symbols" | "recheckedAt">,
): Promise<HoldRecord | null> {
  const entry = await kv.get<HoldRecord>(keys.hold(msgId));
  if (!entry.value) return null;
  const next = { ...entry.value, ...change };
  const res = await kv.atomic().check(entry).set(keys.hold(msgId), next).commit();
  return res.ok ? next : null;
}

/** Drops every hold past its expiry; returns the ids dropped. */
export async function expireHolds(
  kv: Deno.Kv,
  committer: Committer,
  now: number,
): Promise<string[]> {
  const dropped: string[] = [];
  for (const hold of await listHolds(kv, null, 10_000)) {
    if (hold.expiresAt > now) continue;
    const r = await dropHold(kv, committer, hold.msgId, now, "Held too long: expired unreleased");
    if (r.ok) dropped.push(hold.msgId);
  }
  return dropped;
}
