import assert from "node:assert/strict";
import {
  companyTarget,
  LINGER_TARGET_CHANGES,
  lingerMs,
  NO_ARRIVALS,
  noteArrival,
  othersSending,
} from "./commit_linger.ts";

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

Deno.test("a batch may wait only while others send: a change behind a commit, or company just now", () => {
  assert.equal(othersSending(true, false), true, "a change came while a commit was written");
  assert.equal(othersSending(false, true), true, "the batch before had company");
  assert.equal(othersSending(false, false), false, "a caller's own steps, or after a lone commit");
});

Deno.test("a commit expects no more company than the callers seen waiting at once lately", () => {
  assert.equal(companyTarget([]), 1, "none seen yet: nothing to wait for");
  assert.equal(companyTarget([1, 1, 1]), 1, "one caller's steps");
  assert.equal(companyTarget([2, 1, 2]), 2, "an app on one connection and its deliveries");
  assert.equal(companyTarget([3, 40, 5]), LINGER_TARGET_CHANGES, "a busy relay: up to the target");
});
