import assert from "node:assert/strict";
import { slidingCount, slidingTake } from "./sliding_window.ts";

const MIN = 60_000;

Deno.test("the previous window counts for the part of it still within one window of now", () => {
  assert.equal(slidingCount({ previous: 10, current: 2 }, 5 * MIN, MIN), 12);
  assert.equal(slidingCount({ previous: 10, current: 2 }, 5 * MIN + MIN / 2, MIN), 7);
});

Deno.test("a limit lets its count through, then says when the next one fits", () => {
  // 3 sent at the start of a window: the 4th fits once a third of the next window has passed.
  assert.deepEqual(slidingTake({ previous: 0, current: 2 }, 3, 5 * MIN, MIN), { allowed: true });
  assert.deepEqual(slidingTake({ previous: 0, current: 3 }, 3, 5 * MIN, MIN), {
    allowed: false,
    retryAfterMs: MIN + MIN / 3,
  });
  // Room in this window, but the previous one still weighs: wait until it has decayed enough.
  assert.deepEqual(slidingTake({ previous: 3, current: 1 }, 3, 5 * MIN, MIN), {
    allowed: false,
    retryAfterMs: (2 * MIN) / 3,
  });
  assert.deepEqual(slidingTake({ previous: 3, current: 1 }, 3, 5 * MIN + (2 * MIN) / 3, MIN), {
    allowed: true,
  });
});
