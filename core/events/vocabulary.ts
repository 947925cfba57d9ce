/**
 * The one event vocabulary shared by the event log (`GET /v1/events`), webhooks and stats, in the
 * manner of KumoMTA's log records: a message is `accepted` once; each recipient then collects
 * `deferred` (a transient failure, retried), and ends `delivered`, `bounced` (a permanent
 * failure), `expired` (out of retries), `suppressed` (never tried: on the suppression list) or
 * `failed` (we could not try: no route, a local error). `complained` arrives later, from a
 * feedback report. Content filtering adds `held` (rspamd's score held the message for an operator,
 * with its score and symbols), then `released` or `dropped` (by an operator, a recheck or expiry),
 * and `suspended` (the abuse brake suspended the credential that sent the message).
 */
import { z } from "zod";
import type { EventType, MessageEvent, MessageRecord } from "../model.ts";

/** Append only: the store keeps an event's type as its place in this list (core/store/events.ts). */
export const EVENT_TYPES = [
  "accepted",
  "delivered",
  "deferred",
  "bounced",
  "suppressed",
  "complained",
  "expired",
  "failed",
  "held",
  "released",
  "dropped",
  "suspended",
] as const satisfies readonly EventType[];

// Fails to compile when model.ts gains an event type this list lacks.
type _Missing = Exclude<EventType, (typeof EVENT_TYPES)[number]>;
const _allListed: [_Missing] extends [never] ? true : never = true;
void _allListed;

export const EventTypeSchema = z.enum(EVENT_TYPES).describe(
  "accepted · delivered · deferred · bounced · suppressed · complained · expired · failed · " +
    "held · released · dropped · suspended",
);

/** An event as the API and webhooks show it: snake_case, ISO times, nulls for absent fields. */
export interface EventView {
  id: string;
  type: EventType;
  at: string;
  recipient: string | null;
  reply: string | null;
  category: string | null;
  remote_host: string | null;
  tls: string | null;
  next_attempt_at: string | null;
  /** `held`: rspamd's score and matched symbols (only on content events). */
  score?: number;
  symbols?: string[];
  message: {
    id: string;
    tags: string[];
    metadata: Record<string, string>;
  };
}

export function eventView(
  event: MessageEvent,
  message?: Pick<MessageRecord, "tags" | "metadata"> | null,
): EventView {
  return {
    id: event.id,
    type: event.type,
    at: new Date(event.at).toISOString(),
    recipient: event.rcpt ?? null,
    reply: event.reply ?? null,
    category: event.category ?? null,
    remote_host: event.remoteHost ?? null,
    tls: event.tls ?? null,
    next_attempt_at: event.nextAttemptAt ? new Date(event.nextAttemptAt).toISOString() : null,
    ...(event.score !== undefined ? { score: event.score, symbols: event.symbols ?? [] } : {}),
    message: {
      id: event.msgId,
      tags: message?.tags ?? [],
      metadata: message?.metadata ?? {},
    },
  };
}
