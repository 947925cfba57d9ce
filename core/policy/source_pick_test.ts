import assert from "node:assert/strict";
import {
  nextUtcDayStart,
  pickSource,
  type SourceCandidate,
  utcDay,
  warmupCap,
  warmupDay,
} from "./source_pick.ts";

const DAY = 86_400_000;
const START = Date.parse("2026-03-01T00:00:00Z");

function cand(
  address: string,
  weight = 1,
  remaining: number | null = null,
  until = 0,
): SourceCandidate {
  return { address, weight, remaining, deprioritisedUntil: until };
}

// A sequence of random numbers, so a weighted pick is deterministic.
function randoms(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

Deno.test("warmupCap() follows the plan day by day, then lifts the cap", () => {
  const plan = { start: "2026-03-01", daily: [50, 100, 500] };
  const cases: Array<[now: number, day: number, cap: number | null]> = [
    [START - 1, -1, 50], // before the start: the first day's cap, not unlimited volume
    [START, 0, 50],
    [START + DAY - 1, 0, 50],
    [START + DAY, 1, 100],
    [START + 2 * DAY + 5, 2, 500],
    [START + 3 * DAY, 3, null],
    [START + 90 * DAY, 90, null],
  ];
  for (const [now, day, cap] of cases) {
    assert.equal(warmupDay(plan, now), day, new Date(now).toISOString());
    assert.equal(warmupCap(plan, now), cap, new Date(now).toISOString());
  }
  assert.equal(utcDay(START + DAY + 1), utcDay(START) + 1);
});

Deno.test("pickSource() chooses by weight among the sources that may send", () => {
  const cases: Array<{ says: string; cands: SourceCandidate[]; r: number; want: string | null }> = [
    { says: "low draw, first by weight", cands: [cand("a", 1), cand("b", 3)], r: 0.2, want: "a" },
    { says: "high draw, second", cands: [cand("a", 1), cand("b", 3)], r: 0.3, want: "b" },
    {
      says: "a warm-up cap used up spills to the warm source",
      cands: [cand("a", 100, 0), cand("b", 1)],
      r: 0,
      want: "b",
    },
    {
      says: "room left under the cap",
      cands: [cand("a", 100, 2), cand("b", 1)],
      r: 0.5,
      want: "a",
    },
    {
      says: "every source capped: none",
      cands: [cand("a", 1, 0), cand("b", 1, 0)],
      r: 0,
      want: null,
    },
    {
      says: "a deprioritised source is skipped",
      cands: [cand("a", 100, null, 2_000), cand("b", 1)],
      r: 0,
      want: "b",
    },
    {
      says: "its penalty over, it is back",
      cands: [cand("a", 100, null, 1_000), cand("b", 1)],
      r: 0,
      want: "a",
    },
    {
      says: "all deprioritised: still sends, by weight",
      cands: [cand("a", 1, null, 9e9), cand("b", 1, null, 9e9)],
      r: 0.9,
      want: "b",
    },
    { says: "zero weight never chosen", cands: [cand("a", 0), cand("b", 1)], r: 0, want: "b" },
    { says: "no sources", cands: [], r: 0, want: null },
  ];
  for (const { says, cands, r, want } of cases) {
    assert.equal(pickSource(cands, 1_000, randoms(r)), want, says);
  }
});

Deno.test("pickSource() splits traffic in proportion to weight", () => {
  const counts = new Map<string, number>();
  const draws = Array.from({ length: 400 }, (_, i) => (i + 0.5) / 400);
  const random = randoms(...draws);
  for (let i = 0; i < 400; i++) {
    const a = pickSource([cand("x", 1), cand("y", 3)], 0, random)!;
    counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(counts), { x: 100, y: 300 });
});

Deno.test("a source at its warm-up cap may send again from the next UTC midnight", () => {
  assert.equal(nextUtcDayStart(Date.UTC(2026, 11, 5, 10, 30)), Date.UTC(2026, 11, 6));
  assert.equal(nextUtcDayStart(Date.UTC(2026, 11, 5)), Date.UTC(2026, 11, 6));
});
