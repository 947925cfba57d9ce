import assert from "node:assert/strict";
import {
  DEFAULT_INITIAL_CONCURRENCY,
  initialWindow,
  onSuccess,
  onThrottle,
  release,
  tryAcquire,
  type Window,
} from "./concurrency_window.ts";

function window(limit: number, cooldownUntil = 0, current = 0): Window {
  return { limit, current, cooldownUntil };
}

Deno.test("initialWindow() starts at the initial concurrency, capped at the maximum", () => {
  const cases: Array<[max: number, initial: number | undefined, want: Window]> = [
    [20, undefined, window(DEFAULT_INITIAL_CONCURRENCY)],
    [20, 2, window(2)],
    [3, undefined, window(3)],
    [1, 10, window(1)],
  ];
  for (const [max, initial, want] of cases) {
    assert.deepEqual(initialWindow(max, initial), want, `max=${max} initial=${initial}`);
  }
});

Deno.test("initialWindow() rejects a maximum or initial concurrency below one", () => {
  const cases: Array<[number, number, RegExp]> = [
    [0, 1, /'max' must be an integer >= 1: current value is 0/],
    [2.5, 1, /'max' must be an integer >= 1/],
    [5, 0, /'initial' must be an integer >= 1: current value is 0/],
  ];
  for (const [max, initial, message] of cases) {
    assert.throws(() => initialWindow(max, initial), message);
  }
});

Deno.test("onSuccess() grows the limit by one up to the maximum, but not while cooling down", () => {
  const cases: Array<{ says: string; w: Window; max: number; now: number; want: Window }> = [
    { says: "grows by one", w: window(5), max: 10, now: 0, want: window(6) },
    { says: "stops at the maximum", w: window(10), max: 10, now: 0, want: window(10) },
    { says: "comes down to a lowered maximum", w: window(10), max: 4, now: 0, want: window(4) },
    {
      says: "holds during the cooldown",
      w: window(3, 1_000),
      max: 10,
      now: 999,
      want: window(3, 1_000),
    },
    {
      says: "grows again once the cooldown ends",
      w: window(3, 1_000),
      max: 10,
      now: 1_000,
      want: window(4, 1_000),
    },
    {
      says: "keeps the in-flight count",
      w: window(3, 0, 2),
      max: 10,
      now: 0,
      want: window(4, 0, 2),
    },
  ];
  for (const { says, w, max, now, want } of cases) {
    assert.deepEqual(onSuccess(w, max, now), want, says);
  }
});

Deno.test("onThrottle() halves the limit once per cooldown, never below one", () => {
  const cases: Array<{ says: string; w: Window; now: number; want: Window }> = [
    { says: "halves and starts a cooldown", w: window(10), now: 100, want: window(5, 60_100) },
    { says: "rounds an odd limit down", w: window(5), now: 100, want: window(2, 60_100) },
    { says: "never goes below one", w: window(1), now: 100, want: window(1, 60_100) },
    {
      says: "only extends the cooldown when already cooling down",
      w: window(5, 60_100),
      now: 200,
      want: window(5, 60_200),
    },
    {
      says: "halves again after the cooldown",
      w: window(5, 60_100),
      now: 60_100,
      want: window(2, 120_100),
    },
    {
      says: "keeps the in-flight count",
      w: window(8, 0, 8),
      now: 100,
      want: window(4, 60_100, 8),
    },
  ];
  for (const { says, w, now, want } of cases) {
    assert.deepEqual(onThrottle(w, now, 60_000), want, says);
  }
});

Deno.test("tryAcquire() and release() count deliveries in flight within the limit", () => {
  const cases: Array<{ says: string; w: Window; acquired: Window | undefined; released: Window }> =
    [
      {
        says: "takes a free slot",
        w: window(2, 0, 1),
        acquired: window(2, 0, 2),
        released: window(2, 0, 0),
      },
      {
        says: "refuses a full window",
        w: window(2, 0, 2),
        acquired: undefined,
        released: window(2, 0, 1),
      },
      {
        says: "refuses a window that shrank below its in-flight count",
        w: window(2, 0, 5),
        acquired: undefined,
        released: window(2, 0, 4),
      },
      {
        says: "never counts below zero",
        w: window(2),
        acquired: window(2, 0, 1),
        released: window(2),
      },
    ];
  for (const { says, w, acquired, released } of cases) {
    assert.deepEqual(tryAcquire(w), acquired, says);
    assert.deepEqual(release(w), released, says);
  }
});

Deno.test("the window grows through successes, halves on push-back and recovers", () => {
  const max = 8;
  let w = initialWindow(max, 2);
  const limits: number[] = [];
  for (let now = 0; now < 10; now++) {
    w = onSuccess(w, max, now);
    limits.push(w.limit);
  }
  w = onThrottle(w, 10, 5);
  limits.push(w.limit);
  for (let now = 11; now < 19; now++) {
    w = onSuccess(w, max, now);
    limits.push(w.limit);
  }
  assert.deepEqual(limits, [3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 5, 6, 7, 8]);
});
