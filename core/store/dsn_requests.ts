/**
 * A DSN owed to a sender, written in the same commit that bounces the recipients it reports, and
 * deleted by the commit that queues the DSN itself (with a check on this entry), so a crash
 * between the two neither loses the DSN nor sends it twice.
 *
 * @module
 */
import { keys } from "./keys.ts";
import type { DsnRecipient } from "../mail/dsn.ts";

export interface DsnRequest {
  id: string;
  account: string;
  msgId: string;
  /** The original envelope sender: where the DSN goes. */
  to: string;
  arrivalAt: number;
  /** The original header section, capped (mail/dsn.ts headerSection). */
  headers: Uint8Array;
  recipients: DsnRecipient[];
  createdAt: number;
  /** About test-mode mail: the DSN is test-mode mail too. */
  test?: boolean;
}

export interface PendingDsn {
  key: Deno.KvKey;
  versionstamp: string;
  request: DsnRequest;
}

/** A request just committed (at `versionstamp`), as the DSN's message commit claims it. */
export function pendingDsn(request: DsnRequest, versionstamp: string): PendingDsn {
  return { key: keys.dsnRequest(request.msgId, request.id), versionstamp, request };
}

export function dsnRequestOp(op: Deno.AtomicOperation, request: DsnRequest) {
  op.set(keys.dsnRequest(request.msgId, request.id), request);
}

/** The check and delete that the DSN's own message commit carries. */
export function claimDsnOp(op: Deno.AtomicOperation, pending: PendingDsn) {
  op.check({ key: pending.key, versionstamp: pending.versionstamp });
  op.delete(pending.key);
}

/** DSNs still owed that were requested before `before` (a crash left them, or a send failed). */
export async function listPendingDsns(
  kv: Deno.Kv,
  before: number,
  limit: number,
): Promise<PendingDsn[]> {
  const out: PendingDsn[] = [];
  for await (const e of kv.list<DsnRequest>({ prefix: keys.dsnRequestPrefix() }, { limit })) {
    if (e.value.createdAt < before) {
      out.push({ key: e.key, versionstamp: e.versionstamp, request: e.value });
    }
  }
  return out;
}
