import assert from "node:assert/strict";
import { MemoryBudget } from "./memory_budget.ts";

Deno.test("a hold grows within the client's share and the total, and gives everything back once", () => {
  const budget = new MemoryBudget(100, 60);
  const a = budget.hold("a", 50)!;
  assert.ok(a);
  assert.equal(a.grow(20), false, "past a's share of 60");
  assert.equal(a.grow(10), true);
  const b = budget.hold("b", 30)!;
  assert.ok(b);
  assert.equal(budget.hold("c", 11), null, "past the total of 100");
  assert.ok(budget.hold("c", 10));
  assert.equal(budget.used, 100);
  a.shrink(1_000);
  assert.equal(a.bytes, 0);
  assert.equal(budget.heldBy("a"), 0);
  a.release();
  a.release();
  b.release();
  assert.equal(budget.used, 10);
  assert.equal(b.grow(1), false, "a released hold stays released");
});
