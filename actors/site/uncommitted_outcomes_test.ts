import assert from "node:assert/strict";
import { UncommittedOutcomes } from "./uncommitted_outcomes.ts";
import { createLogger } from "../../core/log.ts";
import { FakeTimers } from "../../tests/support/fake_timers.ts";

Deno.test("a held outcome is committed again until the store takes it, then its entry is let go", async () => {
  const released: string[] = [];
  let drained = 0;
  // The retry back-off runs on a clock the test moves: no real waiting.
  const timers = new FakeTimers();
  const held = new UncommittedOutcomes({
    site: "s",
    timers,
    log: createLogger({ level: "error", write: () => {} }),
    committed: (id) => released.push(id),
    drained: () => drained++,
  });
  let storeFull = true;
  let tries = 0;
  const commit = () => {
    tries++;
    return storeFull ? Promise.reject(new Error("database or disk is full")) : Promise.resolve();
  };
  held.hold("a", commit, new Error("database or disk is full"));
  held.hold("b", commit, new Error("database or disk is full"));
  assert.equal(held.size, 2);
  assert.ok(held.has("a") && held.has("b"));
  while (tries < 2) await timers.fireNext();
  assert.deepEqual(released, [], "nothing is let go while the store refuses");
  storeFull = false;
  const settled = held.settled();
  while (held.size > 0) await timers.fireNext();
  await settled;
  assert.deepEqual(released, ["a", "b"]);
  assert.equal(held.size, 0);
  assert.equal(drained, 1);
});
