import assert from "node:assert/strict";
import {
  afterFailure,
  DEFAULT_WEBHOOK_RETRY_SCHEDULE,
  parseWebhookRetrySchedule,
  scheduleSpan,
} from "./webhook_retry.ts";

const S = 1_000, M = 60 * S, H = 60 * M;

Deno.test("the default webhook schedule tries now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h", () => {
  const schedule = parseWebhookRetrySchedule(DEFAULT_WEBHOOK_RETRY_SCHEDULE);
  assert.deepEqual(schedule, [0, 5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H]);
  assert.ok(scheduleSpan(schedule) > 24 * H && scheduleSpan(schedule) < 30 * H);
});

Deno.test("afterFailure() walks one event through the whole schedule, then gives it up", () => {
  const schedule = parseWebhookRetrySchedule(DEFAULT_WEBHOOK_RETRY_SCHEDULE);
  let now = 0;
  const gaps: number[] = [];
  for (let attempts = 1;; attempts++) {
    const next = afterFailure({ schedule, attempts, streak: attempts, visibleAt: 0, now });
    if (next.kind === "give_up") {
      assert.equal(attempts, schedule.length);
      break;
    }
    gaps.push(next.at - now);
    now = next.at;
  }
  assert.deepEqual(gaps, schedule.slice(1));
});

Deno.test("afterFailure() gives up an event older than the schedule's span at its first failure", () => {
  const schedule = [0, 10, 20];
  const next = afterFailure({ schedule, attempts: 1, streak: 5, visibleAt: 0, now: 31 });
  assert.deepEqual(next, { kind: "give_up", nextAttemptAt: 51 });
});

Deno.test("afterFailure() paces an event that inherited a failure streak at the streak's delay", () => {
  const schedule = [0, 10, 20, 40];
  const next = afterFailure({ schedule, attempts: 1, streak: 3, visibleAt: 100, now: 100 });
  assert.deepEqual(next, { kind: "retry", at: 140 });
});

Deno.test("parseWebhookRetrySchedule() names the item it cannot read", () => {
  assert.throws(() => parseWebhookRetrySchedule("0s,soon"), /item 2 \("soon"\)/);
  assert.throws(() => parseWebhookRetrySchedule("0s,,5s"), /empty/);
});
