/**
 * Postfix counts the errors a client makes "without delivering mail": every 4yz/5yz reply but
 * the closing 421, and 452 "too many recipients" only past an overshoot allowance (a client that
 * splits a big list on our 452s is not misbehaving). A delivered message starts the count again.
 * Both SMTP connections (engine/connection.ts, and smtp-server's as smtp_server_patches.ts
 * patches it) count this way, on the fields the session limits read.
 *
 * @module
 */

/** A session's counts, under the names the session limits use. */
export interface ReplyErrorCounts {
  _posternErrors?: number;
  _posternOvershoot?: number;
}

/** Counts one reply sent with `code` in `context` ("DATA_OK": a message was accepted). */
export function countReplyError(
  counts: ReplyErrorCounts,
  code: number,
  context: unknown,
  recipientOvershoot: number,
) {
  if (context === "DATA_OK") {
    counts._posternErrors = 0;
    return;
  }
  if (code < 400 || code === 421) return;
  if (code === 452) {
    counts._posternOvershoot = (counts._posternOvershoot ?? 0) + 1;
    if (counts._posternOvershoot <= recipientOvershoot) return;
  }
  counts._posternErrors = (counts._posternErrors ?? 0) + 1;
}
