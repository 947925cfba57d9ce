/** The mail-domain records the store keeps. Key shapes live in store/keys.ts. */

/**
 * `held`: the content scan held the message (core/store/holds.ts); never delivered until released.
 * `dropped`: an operator dropped it from the hold queue, or it expired there.
 */
export type RecipientStatus =
  | "queued"
  | "deferred"
  | "delivered"
  | "bounced"
  | "suppressed"
  | "held"
  | "dropped";

export const FINAL_STATUSES: ReadonlySet<RecipientStatus> = new Set([
  "delivered",
  "bounced",
  "suppressed",
  "dropped",
]);

export interface MessageRecord {
  id: string;
  account: string;
  mailFrom: string;
  size: number;
  /** Number of body chunks under ["body", id, n] (0 when the body is spooled). */
  chunks: number;
  /** The body is a file in the store's spool beside the KV file (core/store/body_spool.ts). */
  spooled?: true;
  recipients: number;
  createdAt: number;
  credentialId: string | null;
  clientAddress: string;
  /** "dsn": a delivery status notification Postern wrote itself (sent from <>). */
  via: "smtp" | "http" | "dsn" | "report";
  /** The Message-ID header (as added or found). */
  messageId: string;
  subject: string;
  /**
   * Header fields sent in front of the stored body: the DKIM-Signature fields added at intake,
   * each ending in CRLF. Not counted in `size` or stored in the body chunks. Stored with the body
   * in its due entry when a body of a page or more rides there (core/store/messages.ts), else in
   * the record; the due entry read for delivery puts it back here.
   */
  prefix?: string;
  /** Labels given at submission (HTTP `tags`, SMTP `X-Postern-Tags`): search, stats, webhooks. */
  tags?: string[];
  /** Caller's own key/value strings (HTTP `metadata`), echoed in events and webhooks. */
  metadata?: Record<string, string>;
  /**
   * Accepted with VERP: each recipient's delivery leaves with its own return path at the bounce
   * domain (core/mail/verp.ts returnPathFor), never mailFrom.
   */
  verp?: boolean;
  /** Older records: one VERP return path for the whole message (now per recipient instead). */
  returnPath?: string;
  /** The IP pool named by the `X-Postern-Pool` header (removed from the message at intake). */
  pool?: string;
  /** Test mode: delivered only to the simulated MX (core/sandbox/), never counted in quotas. */
  test?: boolean;
  /** Ids of the events the message commit wrote (`accepted`, `suppressed`): its timeline's start. */
  events?: string[];
  /**
   * The body (one small chunk) rides in the message's only due entry instead of under
   * ["body", id, 0]: it leaves the store with that entry's last delete (core/store/messages.ts).
   */
  bodyInDue?: true;
}

export interface RecipientRow {
  msgId: string;
  idx: number;
  rcpt: string;
  /** Lower-cased domain of rcpt: the destination its due entry is filed under. */
  domain: string;
  status: RecipientStatus;
  attempts: number;
  queuedAt: number;
  /** When the next attempt is due; null once final. */
  nextAttemptAt: number | null;
  lastReply?: string;
  lastCategory?: string;
  /** The source address of the last attempt: a greylisted retry goes out from it again. */
  lastSource?: string;
  updatedAt: number;
  /** Ids of the events written with this row's changes: the rest of the message's timeline. */
  events?: string[];
}

export type EventType =
  | "accepted"
  | "delivered"
  | "deferred"
  | "bounced"
  | "suppressed"
  | "complained"
  | "expired"
  | "failed"
  | "held"
  | "released"
  | "dropped"
  | "suspended";

export interface MessageEvent {
  id: string;
  msgId: string;
  type: EventType;
  at: number;
  rcpt?: string;
  reply?: string;
  category?: string;
  remoteHost?: string;
  localAddress?: string;
  tls?: string;
  /** The session's TLS: cipher, and whether (and by what) the peer was verified. */
  tlsDetails?: {
    version: string;
    cipher: string;
    verified: boolean;
    verifiedBy?: "ca" | "mta-sts" | "dane";
  };
  nextAttemptAt?: number;
  /** `held` (and a recheck): rspamd's score and the symbols that matched. */
  score?: number;
  symbols?: string[];
}
