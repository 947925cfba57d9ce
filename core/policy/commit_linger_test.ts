import assert from "node:assert/strict";
import { LINGER_TARGET_CHANGES, lingerMs, NO_ARRIVALS, noteArrival } from "./commit_linger.ts";

/** The gaps after arrivals at these times. */
const arrivals = (...times: number[]) => times.reduce(noteArrival, NO_ARRIVALS);

Deno.test("a commit waits for company only while changes arrive closely", () => {
  const close = arrivals(0, 1, 2, 3, 4);
  assert.equal(close.gapMs, 1);
  // Seven more are due within 7 ms; the wait stops at the bound.
  assert.equal(lingerMs(LINGER_TARGET_CHANGES - 7, 0, close, 6), 6);
  assert.equal(lingerMs(LINGER_TARGET_CHANGES - 3, 0, close, 6), 3);
  assert.equal(lingerMs(LINGER_TARGET_CHANGES, 0, close, 6), 0, "full enough");
  assert.equal(lingerMs(1, 0, close, 0), 0, "waiting is off");
  assert.equal(lingerMs(1, 0, arrivals(0), 6), 0, "one arrival says nothing about the next");
  assert.equal(lingerMs(1, 0, arrivals(0, 50, 100), 6), 0, "arrivals too sparse");
});

Deno.test("time a change already spent queued counts against its wait", () => {
  const close = arrivals(0, 1, 2, 3);
  assert.equal(lingerMs(1, 2, close, 6), 4);
  assert.equal(lingerMs(1, 6, close, 6), 0);
  assert.equal(lingerMs(1, 9, close, 6), 0, "never negative");
});

Deno.test("one arrival after a pause is enough to stop waiting; a new burst is seen within a few tens", () => {
  let gaps = arrivals(0, 1, 2, 3, 4, 5);
  gaps = noteArrival(gaps, 10_005);
  assert.equal(lingerMs(1, 0, gaps, 6), 0, "an idle relay's next change goes at once");
  for (let t = 10_006; t < 10_030; t++) gaps = noteArrival(gaps, t);
  assert.ok(lingerMs(1, 0, gaps, 6) > 0, `gap ${gaps.gapMs} ms after a burst`);
});
