import assert from "node:assert/strict";
import { bodySpoolOf, useBodySpool } from "./body_spool.ts";
import { concatChunks, readBody } from "./bodies.ts";
import { sweepStaged } from "./sweeper.ts";
import { keys } from "./keys.ts";

Deno.test("a spooled body reads back byte-exact; after an hour the sweeper removes the file no message names and keeps the one that is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_spool_" });
  const kv = await Deno.openKv(":memory:");
  try {
    const spool = await useBodySpool(kv, `${dir}/bodies`);
    assert.equal(bodySpoolOf(kv), spool);
    const body = new Uint8Array(700_000).map((_, i) => i % 251);
    for (const id of ["named", "orphan"]) {
      const file = spool.create(id);
      file.write(body.subarray(0, 300_000));
      file.write(body.subarray(300_000));
      await file.finish();
    }
    const read = await Array.fromAsync(readBody(kv, { id: "named", chunks: 0, spooled: true }));
    assert.deepEqual(concatChunks(read), body);

    await kv.set(keys.message("named"), { id: "named" });
    // Within the hour a file may still be waiting for its message commit: nothing goes.
    assert.equal(await sweepStaged(kv, Date.now()), 0);
    assert.equal(await sweepStaged(kv, Date.now() + 61 * 60_000), 1);
    const left = await Array.fromAsync(Deno.readDir(`${dir}/bodies`), (e) => e.name);
    assert.deepEqual(left, ["named"]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
