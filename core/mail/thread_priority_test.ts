import assert from "node:assert/strict";
import { generateDkimKey } from "./dkim.ts";
import { DkimPool } from "./dkim_pool.ts";
import { WORKER_NICE } from "./thread_priority.ts";

/** The nice value of each of this process's threads (Deno names a Web Worker's `worker-N`). */
function threadNice(): { tid: number; name: string; nice: number }[] {
  const out = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const stat = Deno.readTextFileSync(`/proc/self/task/${task.name}/stat`);
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    // Fields after the name: state is field 3, nice field 19 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out.push({ tid: Number(task.name), name, nice: Number(fields[16]) });
  }
  return out;
}

Deno.test({
  name: "the DKIM signing workers run at a lower priority than the relay's main thread",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const main = () => threadNice().find((t) => t.tid === Deno.pid)!.nice;
    const mainBefore = main();
    // Threads of the test runner's own may be named alike (and run at the normal priority):
    // only the threads the pool starts count.
    const before = new Set(threadNice().map((t) => t.tid));
    const pool = new DkimPool({ workers: 2 });
    try {
      const key = {
        domain: "example.test",
        selector: "s1",
        algorithm: "rsa" as const,
        privateKey: generateDkimKey("rsa").privateKey,
        version: "1",
      };
      // Two at once: both workers start.
      await Promise.all([
        pool.sign([key], [new Uint8Array([1])]),
        pool.sign([key], [new Uint8Array([2])]),
      ]);
      const workers = threadNice().filter((t) =>
        t.name.startsWith("worker-") && !before.has(t.tid)
      );
      assert.equal(workers.length, 2, JSON.stringify(threadNice()));
      assert.deepEqual(workers.map((w) => w.nice), workers.map(() => WORKER_NICE));
      assert.equal(main(), mainBefore, "the main thread keeps its priority");
    } finally {
      pool.close();
    }
  },
});
