import assert from "node:assert/strict";
import { UncommittedOutcomes } from "./uncommitted_outcomes.ts";
import { createLogger } from "../core/log.ts";

Deno.test("a held outcome is committed again until the store takes it, then its entry is let go", async () => {
  const released: string[] = [];
  let drained = 0;
  const held = new UncommittedOutcomes({
    site: "s",
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
  while (tries < 2) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(released, [], "nothing is let go while the store refuses");
  storeFull = false;
  await held.settled();
  assert.deepEqual(released, ["a", "b"]);
  assert.equal(held.size, 0);
  assert.equal(drained, 1);
});
