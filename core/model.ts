/** The mail-domain records the store keeps. Key shapes live in store/keys.ts. */

export type RecipientStatus = "queued" | "deferred" | "delivered" | "bounced" | "suppressed";

export const FINAL_STATUSES: ReadonlySet<RecipientStatus> = new Set([
  "delivered",
  "bounced",
  "suppressed",
]);

export interface MessageRecord {
  id: string;
  account: string;
  mailFrom: string;
  size: number;
  /** Number of body chunks under ["body", id, n]. */
  chunks: number;
  recipients: number;
  createdAt: number;
  credentialId: string | null;
  clientAddress: string;
  via: "smtp" | "http";
  /** The Message-ID header (as added or found). */
  messageId: string;
  subject: string;
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
  updatedAt: number;
}

export type EventType =
  | "accepted"
  | "delivered"
  | "deferred"
  | "bounced"
  | "suppressed"
  | "expired"
  | "failed";

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
  nextAttemptAt?: number;
}
