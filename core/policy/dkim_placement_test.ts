import assert from "node:assert/strict";
import {
  averageSigningMs,
  keepSigningInPlace,
  SIGNING_HAND_OVER_MS,
  SIGNING_SAMPLES,
  signingPlacement,
} from "./dkim_placement.ts";

Deno.test("the pool signs from 3 cores on, the main thread on 1, and on 2 the cheaper of the two", () => {
  assert.deepEqual(signingPlacement(8), { workers: 8, inPlaceUpToMs: 0 });
  assert.deepEqual(signingPlacement(3), { workers: 3, inPlaceUpToMs: 0 });
  assert.deepEqual(signingPlacement(1), { workers: 0, inPlaceUpToMs: 0 });
  assert.deepEqual(signingPlacement(2), { workers: 2, inPlaceUpToMs: SIGNING_HAND_OVER_MS });
});

Deno.test("POSTERN_DKIM_WORKERS, when set, is taken as it is", () => {
  assert.deepEqual(signingPlacement(2, 0), { workers: 0, inPlaceUpToMs: 0 });
  assert.deepEqual(signingPlacement(2, 4), { workers: 4, inPlaceUpToMs: 0 });
  assert.deepEqual(signingPlacement(16, 1), { workers: 1, inPlaceUpToMs: 0 });
});

Deno.test("signatures stay in place until enough were timed, and while they cost no more than the hand-over", () => {
  assert.equal(keepSigningInPlace(SIGNING_SAMPLES - 1, 5, 0.5), true, "too few to tell");
  assert.equal(keepSigningInPlace(SIGNING_SAMPLES, 0.3, 0.5), true);
  assert.equal(keepSigningInPlace(SIGNING_SAMPLES, 1.1, 0.5), false);
});

Deno.test("one slow signature does not move the average much; a slower machine does", () => {
  let average: number | null = null;
  for (let i = 0; i < 64; i++) average = averageSigningMs(average, 0.3);
  assert.ok(averageSigningMs(average, 20) < 1.6, "one 20 ms pause");
  for (let i = 0; i < 128; i++) average = averageSigningMs(average, 1.1);
  assert.ok(Math.abs(average! - 1.1) < 0.01);
});
