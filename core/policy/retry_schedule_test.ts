import assert from "node:assert/strict";
import {
  DEFAULT_RETRY_SCHEDULE,
  type NextAttempt,
  nextAttempt,
  parseRetrySchedule,
  retryDelay,
} from "./retry_schedule.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

Deno.test("parseRetrySchedule() reads a comma-separated list of durations", () => {
  const cases: Array<[string, number[]]> = [
    ["1m,5m,15m,1h,4h", [MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 4 * HOUR]],
    [" 30s , 1.5h ", [30_000, 90 * MINUTE]],
    ["10m", [10 * MINUTE]],
    [DEFAULT_RETRY_SCHEDULE, [1, 5, 15, 30, 60, 120, 240, 480].map((m) => m * MINUTE)],
  ];
  for (const [text, schedule] of cases) assert.deepEqual(parseRetrySchedule(text), schedule, text);
});

Deno.test("parseRetrySchedule() names the bad item", () => {
  const cases: Array<[string, string]> = [
    ["", `Cannot parse retry schedule "": item 1 ("") is not a duration such as "5m"`],
    ["1m,,5m", `Cannot parse retry schedule "1m,,5m": item 2 ("") is not a duration such as "5m"`],
    [
      "1m,5x,1h",
      `Cannot parse retry schedule "1m,5x,1h": item 2 ("5x") is not a duration such as "5m"`,
    ],
    ["1m,0s", `Cannot parse retry schedule "1m,0s": item 2 ("0s") must be longer than 0`],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseRetrySchedule(text), { message }, text);
  }
});

Deno.test("retryDelay() follows the schedule and repeats the last entry past its end", () => {
  const schedule = [1, 5, 15];
  const cases: Array<[number, number]> = [[1, 1], [2, 5], [3, 15], [4, 15], [100, 15]];
  for (const [failures, delay] of cases) {
    assert.equal(retryDelay(schedule, failures), delay, `failures=${failures}`);
  }
});

Deno.test("retryDelay() rejects an empty schedule and a failure count below one", () => {
  assert.throws(() => retryDelay([], 1), /the schedule is empty/);
  for (const failures of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => retryDelay([1], failures),
      /'failures' must be an integer >= 1/,
      String(failures),
    );
  }
});

Deno.test("nextAttempt() schedules, honours notBefore, caps at the deadline and expires", () => {
  const schedule = [MINUTE, 5 * MINUTE, HOUR];
  const base = { schedule, queuedAt: 1_000, maxAgeMs: 2 * HOUR };
  const cases: Array<
    { says: string; failures: number; now: number; notBefore?: number; want: NextAttempt }
  > = [
    {
      says: "retries one delay after now",
      failures: 1,
      now: 1_000,
      want: { kind: "retry", at: 1_000 + MINUTE },
    },
    {
      says: "uses the delay for the failure count",
      failures: 2,
      now: 10_000,
      want: { kind: "retry", at: 10_000 + 5 * MINUTE },
    },
    {
      says: "waits for a later notBefore",
      failures: 1,
      now: 1_000,
      notBefore: 1_000 + 10 * MINUTE,
      want: { kind: "retry", at: 1_000 + 10 * MINUTE },
    },
    {
      says: "ignores an earlier notBefore",
      failures: 1,
      now: 1_000,
      notBefore: 5,
      want: { kind: "retry", at: 1_000 + MINUTE },
    },
    {
      says: "makes one final attempt at the deadline",
      failures: 3,
      now: 1_000 + 90 * MINUTE,
      want: { kind: "retry", at: 1_000 + 2 * HOUR },
    },
    {
      says: "caps a notBefore past the deadline",
      failures: 1,
      now: 1_000,
      notBefore: 1_000 + DAY,
      want: { kind: "retry", at: 1_000 + 2 * HOUR },
    },
    {
      says: "expires at the deadline",
      failures: 4,
      now: 1_000 + 2 * HOUR,
      want: { kind: "expire" },
    },
    {
      says: "expires after the deadline",
      failures: 4,
      now: 1_000 + 3 * HOUR,
      want: { kind: "expire" },
    },
  ];
  for (const { says, want, ...rest } of cases) {
    assert.deepEqual(nextAttempt({ ...base, ...rest }), want, says);
  }
});

Deno.test("nextAttempt() walks the default schedule for five days, then expires", () => {
  const schedule = parseRetrySchedule(DEFAULT_RETRY_SCHEDULE);
  const queuedAt = 0;
  const maxAgeMs = 5 * DAY;
  const attempts: number[] = [];
  let now = queuedAt;
  for (let failures = 1;; failures++) {
    const next = nextAttempt({ schedule, failures, queuedAt, now, maxAgeMs });
    if (next.kind === "expire") break;
    attempts.push(next.at);
    now = next.at;
  }
  // Cumulative minutes: 1, 6, 21, 51, 111, 231, 471, 951, then every 8 h until the final
  // attempt at exactly five days.
  const minutes = [1, 6, 21, 51, 111, 231, 471, 951];
  for (let m = 951 + 480; m < 5 * 24 * 60; m += 480) minutes.push(m);
  minutes.push(5 * 24 * 60);
  assert.deepEqual(attempts, minutes.map((m) => m * MINUTE));
  assert.equal(now, queuedAt + maxAgeMs);
});
