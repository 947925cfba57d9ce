import assert from "node:assert/strict";
import type { Rate } from "./duration.ts";
import { type GcraState, gcraTake } from "./gcra.ts";

type Step = [now: number, allowed: boolean, retryAfterMs: number];

// Feeds the steps through one limiter, threading the state, and returns what it answered.
function run(rate: Rate, burst: number | undefined, steps: Step[]): Step[] {
  let state: GcraState | undefined;
  return steps.map(([now]) => {
    const result = gcraTake(state, rate, now, burst);
    state = result.state;
    return [now, result.allowed, result.retryAfterMs];
  });
}

Deno.test("gcraTake() spaces events evenly, lets bursts through and forgets idle time", () => {
  const cases: Array<{ says: string; rate: Rate; burst?: number; steps: Step[] }> = [
    {
      says: "by default one event per interval, the first at once",
      rate: { count: 10, perMs: 1_000 },
      steps: [[0, true, 0], [0, false, 100], [50, false, 50], [100, true, 0], [150, false, 50]],
    },
    {
      says: "events that keep to the rate all pass",
      rate: { count: 10, perMs: 1_000 },
      steps: [[0, true, 0], [100, true, 0], [200, true, 0], [300, true, 0]],
    },
    {
      says: "a burst of three passes back to back, then the rate applies",
      rate: { count: 10, perMs: 1_000 },
      burst: 3,
      steps: [[0, true, 0], [0, true, 0], [0, true, 0], [0, false, 100], [100, true, 0]],
    },
    {
      says: "a long quiet spell earns no more than the burst",
      rate: { count: 10, perMs: 1_000 },
      burst: 2,
      steps: [[0, true, 0], [60_000, true, 0], [60_000, true, 0], [60_000, false, 100]],
    },
    {
      says: "a per-minute rate spaces events by 600 ms",
      rate: { count: 100, perMs: 60_000 },
      steps: [[1_000, true, 0], [1_001, false, 599], [1_600, true, 0], [2_199, false, 1]],
    },
    {
      says: "an uneven interval rounds the wait up",
      rate: { count: 3, perMs: 1_000 },
      steps: [[0, true, 0], [0, false, 334], [334, true, 0], [334, false, 334]],
    },
    {
      says: "denied attempts do not push the next allowed time back",
      rate: { count: 1, perMs: 1_000 },
      steps: [[0, true, 0], [10, false, 990], [20, false, 980], [1_000, true, 0]],
    },
  ];
  for (const { says, rate, burst, steps } of cases) {
    assert.deepEqual(run(rate, burst, steps), steps, says);
  }
});

Deno.test("gcraTake() leaves the state it was given untouched", () => {
  const state = Object.freeze({ tat: 500 });
  const allowed = gcraTake(state, { count: 1, perMs: 1_000 }, 1_000);
  const denied = gcraTake(state, { count: 1, perMs: 1_000 }, 0);
  assert.deepEqual(state, { tat: 500 });
  assert.deepEqual(allowed, { allowed: true, state: { tat: 2_000 }, retryAfterMs: 0 });
  assert.deepEqual(denied, { allowed: false, state: { tat: 500 }, retryAfterMs: 500 });
});

Deno.test("gcraTake() rejects a rate that is not positive and a burst below one", () => {
  const cases: Array<[Rate, number, RegExp]> = [
    [{ count: 0, perMs: 1_000 }, 1, /the rate must be positive/],
    [{ count: 1, perMs: 0 }, 1, /the rate must be positive/],
    [{ count: -1, perMs: 1_000 }, 1, /the rate must be positive/],
    [{ count: Number.NaN, perMs: 1_000 }, 1, /the rate must be positive/],
    [{ count: 1, perMs: 1_000 }, 0, /'burst' must be an integer >= 1: current value is 0/],
    [{ count: 1, perMs: 1_000 }, 1.5, /'burst' must be an integer >= 1/],
  ];
  for (const [rate, burst, message] of cases) {
    assert.throws(() => gcraTake(undefined, rate, 0, burst), message);
  }
});
