import assert from "node:assert/strict";
import { idTime, idTimePrefix, monotonicId, newId } from "./ids.ts";

Deno.test("monotonicId() increases strictly within one millisecond and when the clock steps back", () => {
  const ids = [
    monotonicId(1_000),
    monotonicId(1_000),
    monotonicId(1_000),
    monotonicId(999),
    monotonicId(1_001),
  ];
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
  }
  assert.equal(ids[0]!.length, 26);
});

Deno.test("idTimePrefix() sorts below every id made at or after that millisecond", () => {
  const prefix = idTimePrefix(5_000);
  assert.ok(prefix < newId(5_000));
  assert.ok(prefix > newId(4_999));
  assert.equal(idTime(newId(123_456)), 123_456);
  assert.equal(idTime("not-an-id"), null);
});

Deno.test("monotonicId() carries through its random part like a number within one millisecond", () => {
  let prev = monotonicId(2_000);
  for (let i = 0; i < 5_000; i++) {
    const next = monotonicId(2_000);
    assert.ok(prev < next, `${prev} < ${next}`);
    assert.equal(next.length, 26);
    assert.equal(next.slice(0, 10), prev.slice(0, 10));
    prev = next;
  }
});
