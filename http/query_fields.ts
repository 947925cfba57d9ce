/** zod fields for query strings: times, ids, cursors, page sizes. */
import { z } from "zod";
import { EVENT_TYPES } from "../core/events/vocabulary.ts";
import type { EventType } from "../core/model.ts";

/** An id made by core/ids.ts (or its 10-character time prefix). */
export const idCursor = z.string().regex(
  /^[0-9A-HJKMNP-TV-Z]{10,26}$/,
  "a cursor as returned in next_cursor",
);

/** An ISO 8601 time such as 2025-01-31T12:00:00Z, as epoch milliseconds. */
export const isoTime = z.string().max(40).transform((s, ctx) => {
  const ms = Date.parse(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s) || Number.isNaN(ms)) {
    ctx.addIssue({ code: "custom", message: "an ISO 8601 time such as 2025-01-31T12:00:00Z" });
    return z.NEVER;
  }
  return ms;
});

export function pageLimit(defaultLimit: number, max: number) {
  return z.coerce.number().int().min(1).max(max).default(defaultLimit);
}

/** A comma-separated list of event types. */
export const eventTypeList = z.string().max(200).transform((s, ctx) => {
  const items = s.split(",").map((t) => t.trim()).filter(Boolean);
  const bad = items.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (bad.length) {
    ctx.addIssue({
      code: "custom",
      message: `unknown event type ${bad.join(", ")}; known: ${EVENT_TYPES.join(", ")}`,
    });
    return z.NEVER;
  }
  return items as EventType[];
});

/**
 * A `since`/`until` window given the wrong way round is the caller's mistake, not an empty
 * page: zod superRefine for query objects that carry both.
 */
export function sinceNotAfterUntil(
  q: { since?: number | undefined; until?: number | undefined },
  ctx: z.RefinementCtx,
) {
  if (q.since !== undefined && q.until !== undefined && q.since > q.until) {
    ctx.addIssue({ code: "custom", path: ["since"], message: "since must not be after until" });
  }
}
