/**
 * When a webhook endpoint is tried again, and when an event is given up.
 *
 * Delivery to one endpoint is in event order, so the endpoint has one head event at a time. The
 * schedule lists the delay before each attempt of an event, measured from the previous failure
 * (the first entry, usually 0, is the first attempt). The head is given up — left in the event
 * log, listed as failed, replayable — once it has used every entry or is older than the
 * schedule's span. Events that queued behind a failing head inherit the endpoint's failure
 * streak: instead of starting a fresh day-long schedule each (which would leave a dead endpoint a
 * backlog that never drains), they are tried at the pace the streak has reached, and the ones
 * already older than the span are given up without an attempt. The first success ends the
 * streak, and the backlog flows in order.
 *
 * @module
 */
import { parseDuration } from "./duration.ts";

/** Now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours in all. */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = "0s,5s,5m,30m,2h,5h,10h,10h";

/**
 * Parses "0s,5s,5m" into milliseconds. Unlike the mail retry schedule a zero delay is allowed: it
 * is how the first attempt says "at once".
 *
 * @throws {Error} naming the first item that is not a duration.
 */
export function parseWebhookRetrySchedule(text: string): number[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.length === 0 || items.some((item) => item === "")) {
    throw new Error(`Cannot parse webhook retry schedule "${text}": an item is empty`);
  }
  return items.map((item, index) => {
    try {
      return parseDuration(item);
    } catch (cause) {
      throw new Error(
        `Cannot parse webhook retry schedule "${text}": item ${
          index + 1
        } ("${item}") is not a duration such as "5m"`,
        { cause },
      );
    }
  });
}

/** How long an event is tried for: the sum of the schedule's delays. */
export function scheduleSpan(schedule: readonly number[]): number {
  return schedule.reduce((sum, d) => sum + d, 0);
}

/** The pause before the next attempt once the endpoint has failed `streak` times in a row. */
export function streakDelay(schedule: readonly number[], streak: number): number {
  if (schedule.length === 0) throw new Error("Cannot compute a webhook delay: schedule is empty");
  return schedule[Math.min(Math.max(streak, 0), schedule.length - 1)]!;
}

export type AfterFailure =
  | { kind: "retry"; at: number }
  | { kind: "give_up"; nextAttemptAt: number };

/**
 * Decides what follows a failed attempt of the head event.
 *
 * - `attempts`: failed attempts of this event, this one included.
 * - `streak`: failed attempts in a row at this endpoint, this one included.
 * - `visibleAt`: when the event became readable (its time plus the settle window); its age is
 *   measured from then.
 */
export function afterFailure(o: {
  schedule: readonly number[];
  attempts: number;
  streak: number;
  visibleAt: number;
  now: number;
}): AfterFailure {
  const pace = streakDelay(o.schedule, o.streak);
  if (o.attempts >= o.schedule.length || isPastDeadline(o.schedule, o.visibleAt, o.now)) {
    return { kind: "give_up", nextAttemptAt: o.now + pace };
  }
  return { kind: "retry", at: o.now + Math.max(o.schedule[o.attempts]!, pace) };
}

/** Whether an event that became readable at `visibleAt` has outlived the schedule. */
export function isPastDeadline(schedule: readonly number[], visibleAt: number, now: number) {
  return now >= visibleAt + scheduleSpan(schedule);
}
