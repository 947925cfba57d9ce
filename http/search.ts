/**
 * GET /v1/messages: the delivery log, newest first, filtered by recipient, sender, status, tag,
 * credential, subject and time, through the index keys core/store/message_index.ts writes in each
 * message commit.
 */
import { Hono } from "hono";
import { z } from "zod";
import { DEFAULT_MAX_SCAN, searchMessages } from "../core/store/message_index.ts";
import { TAG_PATTERN } from "../core/mail/postern_headers.ts";
import type { AppEnv } from "./auth.ts";
import { parseQuery } from "./validate.ts";
import { idCursor, isoTime, pageLimit, sinceNotAfterUntil } from "./query_fields.ts";

export const SearchQuery = z.object({
  recipient: z.string().max(320).optional().describe("an envelope recipient (case-insensitive)"),
  from: z.string().max(320).optional().describe("the envelope sender (case-insensitive)"),
  status: z.enum(["queued", "deferred", "delivered", "bounced", "suppressed", "held", "dropped"])
    .optional()
    .describe("a recipient of the message has this status"),
  tag: z.string().regex(TAG_PATTERN).optional(),
  credential: z.string().regex(/^cr_[0-9a-z]{1,64}$/, "a credential id such as cr_…").optional()
    .describe("the id of the credential that submitted the message"),
  subject: z.string().max(998).optional().describe(
    "a case-insensitive part of the subject, as written or as a mail client shows it (encoded " +
      "words decoded). Not indexed: it is checked on the messages the other filters and the time " +
      `range yield, at most ${DEFAULT_MAX_SCAN} of them per request, so a page may come back ` +
      "short (even empty) with a next_cursor to go on from",
  ),
  since: isoTime.optional().describe("accepted at or after"),
  until: isoTime.optional().describe("accepted before"),
  cursor: idCursor.optional().describe("next_cursor of the previous page"),
  limit: pageLimit(50, 500),
}).strict().superRefine(sinceNotAfterUntil);

export function searchApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const q = parseQuery(c, SearchQuery);
    const result = await searchMessages(kv, {
      account: c.get("principal").account,
      limit: q.limit,
      ...(q.recipient ? { recipient: q.recipient } : {}),
      ...(q.from ? { from: q.from } : {}),
      ...(q.tag ? { tag: q.tag } : {}),
      ...(q.credential ? { credential: q.credential } : {}),
      ...(q.subject ? { subject: q.subject } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.since !== undefined ? { since: q.since } : {}),
      ...(q.until !== undefined ? { until: q.until } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    return c.json({
      data: result.hits.map(({ msg, rows }) => ({
        id: msg.id,
        from: msg.mailFrom,
        subject: msg.subject,
        message_id: msg.messageId,
        created_at: new Date(msg.createdAt).toISOString(),
        via: msg.via,
        tags: msg.tags ?? [],
        test: msg.test === true,
        metadata: msg.metadata ?? {},
        recipients: rows.map((r) => ({ address: r.rcpt, status: r.status })),
      })),
      next_cursor: result.nextCursor,
    });
  });

  return app;
}
