import assert from "node:assert/strict";
import { COMMIT_BUDGET, fits, measureChange } from "./commit_size.ts";
import { directCommit, MeteredAtomic, MeteredWriter } from "./metered.ts";

Deno.test("a run of 63 KB values is written in the fewest commits KV's byte limit allows, each one within it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const sizes: number[] = [];
    const commit = directCommit(kv);
    const writer = new MeteredWriter((apply) => {
      const size = measureChange(apply);
      assert.ok(fits(size), JSON.stringify(size));
      sizes.push(size.payloadBytes);
      return commit(apply);
    });
    const chunk = new Uint8Array(63_000).fill(7);
    for (let i = 0; i < 40; i++) await writer.set(["body", "m", i], chunk);
    await writer.flush();
    // 12 chunks fill a commit's 790 000-byte budget; 40 chunks need four commits, not more.
    assert.equal(sizes.length, Math.ceil(40 / Math.floor(COMMIT_BUDGET.payloadBytes / 63_030)));
    assert.equal((await Array.fromAsync(kv.list({ prefix: ["body", "m"] }))).length, 40);
  } finally {
    kv.close();
  }
});

Deno.test("a metered commit refuses the mutation that would pass the mutation cap, and counts what it holds", () => {
  const atomic = new MeteredAtomic();
  let added = 0;
  while (atomic.tryAdd({ type: "delete", key: ["k", added] })) added++;
  assert.equal(added, COMMIT_BUDGET.mutations);
  assert.equal(atomic.size.mutations, COMMIT_BUDGET.mutations);
  assert.deepEqual(
    measureChange((op) => atomic.apply(op)),
    atomic.size,
  );
});
