import assert from "node:assert/strict";
import { Committer } from "./committer.ts";
import { LINGER_TARGET_CHANGES } from "../policy/commit_linger.ts";
import { COMMIT_BUDGET, keySize, measureChange } from "./commit_size.ts";

Deno.test("changes whose keys together pass 81 920 bytes are split over several commits, none refused", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = new Committer(kv);
    const long = "k".repeat(300);
    // 600 changes of one 300-byte key each: ~185 KB of keys, well within 1000 mutations.
    const results = await Promise.all(
      Array.from(
        { length: 600 },
        (_, i) => committer.commit({ apply: (op) => op.set(["t", long, i], true) }),
      ),
    );
    assert.ok(results.every((r) => typeof r === "string"));
    // Batched to fit, not refused and replayed one change per commit.
    assert.ok(committer.commits >= 3 && committer.commits < 20, `${committer.commits} commits`);
    assert.equal((await Array.fromAsync(kv.list({ prefix: ["t"] }))).length, 600);
  } finally {
    kv.close();
  }
});

Deno.test("no batch holds more than 10 checks, the most a remote store (denokv) accepts", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = new Committer(kv);
    const results = await Promise.all(
      Array.from({ length: 35 }, (_, i) =>
        committer.commit({
          apply: (op) => op.check({ key: ["c", i], versionstamp: null }).set(["c", i], i),
        })),
    );
    assert.ok(results.every((r) => typeof r === "string"));
    assert.ok(committer.commits >= 4, `${committer.commits} commits for 35 checks`);
  } finally {
    kv.close();
  }
});

Deno.test("a single change over a commit's limits is refused before anything is sent", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = new Committer(kv);
    await assert.rejects(
      () =>
        committer.commit({
          apply: (op) => {
            for (let i = 0; i < 11; i++) op.check({ key: ["x", i], versionstamp: null });
          },
        }),
      /11 checks/,
    );
    assert.equal(committer.commits, 0);
  } finally {
    kv.close();
  }
});

Deno.test("a change is measured as Deno encodes it: keys as tuples, values as stored", () => {
  assert.equal(keySize(["ab", 1]), 2 + 2 + 9);
  assert.equal(keySize([new Uint8Array([0, 1])]), 2 + 3);
  const size = measureChange((op) => {
    op.check({ key: ["a"], versionstamp: null });
    op.set(["b"], new Uint8Array(100));
    op.sum(["c"], 1n);
    op.delete(["d"]);
  });
  assert.deepEqual(size, {
    checks: 1,
    mutations: 3,
    payloadBytes: 3 + (2 * 3 + 100) + (2 * 3 + 8) + 3,
    keyBytes: 6,
  });
  assert.ok(COMMIT_BUDGET.checks === 10);
});

Deno.test("counters summed by many changes of one batch land once, with their total", async () => {
  const raw = await Deno.openKv(":memory:");
  try {
    let sums = 0;
    // Counts the sums each commit carries, as the store receives them.
    const kv = new Proxy(raw, {
      get(target, prop) {
        if (prop !== "atomic") return Reflect.get(target, prop, target).bind?.(target);
        return () => {
          const op = target.atomic();
          const sum = op.sum.bind(op);
          op.sum = (key, n) => {
            sums++;
            return sum(key, n);
          };
          return op;
        };
      },
    });
    const committer = new Committer(kv);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        committer.commit({
          apply: (op) => op.set(["msg", i], true).sum(["stat", "a"], 2n).sum(["stat", "b"], 1n),
        })),
    );
    assert.ok(results.every((r) => typeof r === "string"));
    assert.equal((await raw.get<Deno.KvU64>(["stat", "a"])).value?.value, 100n);
    assert.equal((await raw.get<Deno.KvU64>(["stat", "b"])).value?.value, 50n);
    assert.ok(sums <= 2 * committer.commits, `${sums} sums in ${committer.commits} commits`);
    assert.ok(committer.commits < 50, `${committer.commits} commits: the changes shared some`);
  } finally {
    raw.close();
  }
});

/** Whether `promise` settles before `ms` pass (bounds far above any commit: waits of a minute). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("changes arriving closely wait for each other and share one commit; a change after a pause goes at once", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let clock = 0;
    // Waits of up to a minute: a change that waited for company could not pass for one that
    // did not.
    const committer = new Committer(kv, { lingerMs: 60_000, now: () => clock });
    const put = (i: number) => committer.commit({ apply: (op) => op.set(["w", i], i) });
    const first = put(0); // no arrivals before it: committed at once
    clock = 5;
    const second = put(1); // queued behind the first, 5 ms after it
    await first;
    // The second now waits for company (the gaps say more are due); these come in another turn.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const rest = [];
    for (let i = 2; i < LINGER_TARGET_CHANGES + 1; i++) {
      clock += 5;
      rest.push(put(i));
    }
    const stamps = await Promise.all([second, ...rest]);
    assert.equal(new Set(stamps).size, 1, "one commit for the second and the rest");
    assert.equal(committer.commits, 2);

    // Arriving at an idle committer after an hour's pause.
    clock += 3_600_000;
    const alone = put(100);
    assert.equal(
      await settlesWithin(alone, 5_000),
      true,
      "a change after an hour's pause does not wait for company",
    );
    assert.equal(committer.commits, 3);
  } finally {
    kv.close();
  }
});

Deno.test("once commits carry company, a change that finds the committer idle waits for company too, until one goes alone", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let clock = 0;
    const committer = new Committer(kv, { lingerMs: 60_000, now: () => clock });
    const put = (i: number) => committer.commit({ apply: (op) => op.set(["i", i], i) });
    const fill = (from: number, count: number) => {
      const puts = [];
      for (let i = from; i < from + count; i++) {
        clock += 1_000;
        puts.push(put(i));
      }
      return puts;
    };
    // Arrivals a (fake) second apart: a wait for company would last many seconds, so a change
    // that settles within 200 ms did not wait, and one that waited was woken by the company.
    // Busy: the second change comes while the first is written, and waits for the rest.
    const first = put(0);
    clock = 1_000;
    const second = put(1);
    await first;
    await new Promise((resolve) => setTimeout(resolve, 0));
    await Promise.all([second, ...fill(2, LINGER_TARGET_CHANGES - 1)]);
    assert.equal(committer.commits, 2);

    // The committer is idle now; the next change comes as closely as the others did.
    clock += 1_000;
    const next = put(100);
    assert.equal(await settlesWithin(next, 200), false, "it waits for company");
    const stamps = await Promise.all([next, ...fill(101, LINGER_TARGET_CHANGES - 1)]);
    assert.equal(new Set(stamps).size, 1, "and shares one commit with it");
    assert.equal(committer.commits, 3);

    // A pause: the next change goes alone, and after it a caller's steps go at once.
    clock += 3_600_000;
    assert.equal(await settlesWithin(put(200), 5_000), true, "after a pause it goes at once");
    for (let i = 0; i < 5; i++) {
      clock += 1;
      assert.equal(await settlesWithin(put(300 + i), 5_000), true, `step ${i} went at once`);
    }
    assert.equal(committer.commits, 9);
  } finally {
    kv.close();
  }
});

Deno.test("two callers that each wait for their last commit (one app on one connection, and its deliveries) never wait for a third", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let clock = 0;
    const committer = new Committer(kv, { lingerMs: 60_000, now: () => clock });
    // Arrivals a (fake) second apart: waiting for a third caller would last many seconds.
    const caller = (name: string) =>
      (async () => {
        for (let i = 0; i < 30; i++) {
          clock += 1_000;
          await committer.commit({ apply: (op) => op.set([name, i], i) });
        }
      })();
    assert.equal(
      await settlesWithin(Promise.all([caller("intake"), caller("outcome")]), 5_000),
      true,
      "60 changes from two callers did not wait for company that could not come",
    );
    assert.ok(committer.commits <= 32, `${committer.commits} commits: the two shared them`);
  } finally {
    kv.close();
  }
});

Deno.test("a caller that commits step after step never waits for company", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let clock = 0;
    const committer = new Committer(kv, { lingerMs: 60_000, now: () => clock });
    // Arrivals 1 ms apart, each after the previous commit: closely, but never behind one.
    const steps = (async () => {
      for (let i = 0; i < 50; i++) {
        clock += 1;
        await committer.commit({ apply: (op) => op.set(["s", i], i) });
      }
    })();
    assert.equal(
      await settlesWithin(steps, 10_000),
      true,
      "50 commits one after another did not wait a minute",
    );
    assert.equal(committer.commits, 50);
  } finally {
    kv.close();
  }
});
