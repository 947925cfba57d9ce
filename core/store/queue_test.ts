import assert from "node:assert/strict";
import { keys } from "./keys.ts";
import { listQueuedDestinations } from "./queue.ts";

Deno.test("the poll finds domains with due entries whose queue marker was retired, on its first run and when asked for all", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(keys.queue("marked.test"), { touchedAt: 1 });
    await kv.set(keys.due("marked.test", 5, "m1", 0), { rcpts: [0] });
    await kv.set(keys.due("a-unmarked.test", 7, "m2", 0), { rcpts: [0] });
    await kv.set(keys.due("a-unmarked.test", 3, "m3", 0), { rcpts: [0] });
    await kv.set(keys.due("z-unmarked.test", 9, "m4", 0), { rcpts: [0] });
    const domains = async (options?: { all?: boolean }) =>
      (await listQueuedDestinations(kv, options)).map((e) => e.key[1] as string).sort();
    const all = ["a-unmarked.test", "marked.test", "z-unmarked.test"];
    assert.deepEqual(await domains(), all, "the first poll looks for unmarked domains");
    assert.deepEqual(await domains(), ["marked.test"], "the next ones read the markers only");
    assert.deepEqual(await domains({ all: true }), all);
    const first = (await listQueuedDestinations(kv, { all: true }))
      .find((e) => e.key[1] === "a-unmarked.test")!;
    assert.deepEqual(first.value, { touchedAt: 3 }, "touched at its earliest due time");
  } finally {
    kv.close();
  }
});
