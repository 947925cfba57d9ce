/**
 * GET /v1/events: the account's event log, oldest first, by cursor. A consumer that keeps
 * `next_cursor` and asks again after an outage gets every event since, with no gaps: the log is
 * only served up to `settle` before now (core/store/events.ts explains why).
 */
import { Hono } from "hono";
import { z } from "zod";
import { listAccountEvents } from "../core/store/events.ts";
import { loadMessages } from "../core/store/queue.ts";
import { eventView } from "../core/events/vocabulary.ts";
import { idTimePrefix } from "../core/ids.ts";
import type { MessageEvent, MessageRecord } from "../core/model.ts";
import type { AppEnv } from "./auth.ts";
import { parseQuery } from "./validate.ts";
import { eventTypeList, idCursor, isoTime, pageLimit } from "./query_fields.ts";

export const EventsQuery = z.object({
  cursor: idCursor.optional().describe("next_cursor of the previous page: events after it"),
  since: isoTime.optional().describe("without a cursor: events from this time on"),
  limit: pageLimit(100, 1000),
  types: eventTypeList.optional().describe("comma-separated event types to return"),
}).strict();

/** The tags and metadata of the messages some events belong to. */
export function messagesOf(
  kv: Deno.Kv,
  events: readonly MessageEvent[],
): Promise<Map<string, MessageRecord>> {
  return loadMessages(kv, [...new Set(events.map((e) => e.msgId))]);
}

export function eventsApi(deps: { kv: Deno.Kv; settleMs: number; now?: () => number }) {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const q = parseQuery(c, EventsQuery);
    const now = (deps.now ?? Date.now)();
    const after = q.cursor ?? (q.since !== undefined ? idTimePrefix(q.since) : undefined);
    const page = await listAccountEvents(deps.kv, c.get("principal").account, {
      ...(after !== undefined ? { after } : {}),
      until: now - deps.settleMs,
      limit: q.limit,
      ...(q.types ? { types: new Set(q.types) } : {}),
    });
    const messages = await messagesOf(deps.kv, page.events);
    return c.json({
      data: page.events.map((e) => eventView(e, messages.get(e.msgId))),
      next_cursor: page.last ?? after ?? null,
      has_more: page.more,
    });
  });

  return app;
}
