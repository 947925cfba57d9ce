/**
 * The abuse brake's memory: one key per message of a credential that the content scan rejected
 * or held, expiring after the brake's window, so counting a credential's recent strikes is one
 * short range read (ids are time-ordered) and nothing needs sweeping.
 *
 * @module
 */
import { keys } from "./keys.ts";
import { idTimePrefix, monotonicId, newId } from "../ids.ts";
import type { Committer } from "./committer.ts";
import type { MessageEvent } from "../model.ts";

/** Records a strike against `credentialId`; answers the strikes within the window, this one included. */
export async function recordStrike(
  kv: Deno.Kv,
  credentialId: string,
  msgId: string,
  now: number,
  windowMs: number,
): Promise<number> {
  await kv.set(keys.contentStrike(credentialId, newId(now)), { msgId }, { expireIn: windowMs });
  const prefix = keys.contentStrikePrefix(credentialId);
  let n = 0;
  for await (
    const _ of kv.list({ start: [...prefix, idTimePrefix(now - windowMs)], end: [...prefix, "~"] })
  ) n++;
  return n;
}

/**
 * The `suspended` event, in the account's log only: the message it names may have been refused
 * and have no timeline of its own. It expires with the other strikes' kind of data, after 90 days.
 */
export async function recordSuspensionEvent(
  committer: Committer,
  account: string,
  event: { msgId: string; at: number; reply: string },
): Promise<void> {
  await committer.commit({
    apply(op) {
      const ev: MessageEvent = { ...event, type: "suspended", id: monotonicId() };
      op.set(keys.accountEvent(account, ev.id), ev, { expireIn: 90 * 86_400_000 });
    },
  });
}
