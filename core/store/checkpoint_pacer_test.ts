import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openKvFile } from "./kv_file.ts";
import { paceCheckpoints } from "./checkpoint_pacer.ts";
import { increment } from "../../tests/support/kv_increments.ts";
import { WORKER_NICE } from "../mail/thread_priority.ts";

const MiB = 1024 * 1024;

async function store() {
  const dir = await Deno.makeTempDir({ prefix: "postern-pacer-" });
  const path = `${dir}/postern.kv`;
  return { dir, path, kv: await openKvFile(path) };
}

/** Commits of ~40 KB each, spread over the key space the way a message's keys are. */
async function writeSome(kv: Deno.Kv, from: number, commits: number) {
  for (let c = from; c < from + commits; c++) {
    const op = kv.atomic();
    for (let i = 0; i < 20; i++) op.set(["k", (c * 7919 + i * 104729) % 100_003], "x".repeat(2000));
    await op.commit();
  }
}

/** The WAL's length in frames of 2 KiB pages, by its file's size: stat opens no descriptor. */
function walFrames(path: string): number {
  return Math.max(0, (walBytes(path) - 32) / (2048 + 24));
}

function walBytes(path: string): number {
  try {
    return Deno.statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

Deno.test("paced checkpoints: the WAL grows past SQLite's 1000 frames, is checkpointed at its cap and starts over, and every key reads back", async () => {
  const { dir, path, kv } = await store();
  const checkpoints: { frames: number; copied: number }[] = [];
  let firstCheckpoint!: () => void;
  const checkpointed = new Promise<void>((r) => (firstCheckpoint = r));
  const pacer = await paceCheckpoints(path, {
    maxWalBytes: 8 * MiB,
    pollMs: 20,
    onCheckpoint: (c) => {
      checkpoints.push(c);
      firstCheckpoint();
    },
  });
  assert.ok(pacer);
  try {
    // 2 KiB pages: SQLite alone would have started the WAL over at 1000 frames (~2 MB).
    let written = 0;
    while (walFrames(path) < 2000) await writeSome(kv, written++, 1);
    assert.equal(checkpoints.length, 0, "no checkpoint before the cap");
    // Past the cap (4096 frames of 2 KiB), the thread checkpoints and the WAL starts over.
    while (checkpoints.length === 0) {
      await writeSome(kv, written++, 1);
      if (written > 5000) break;
    }
    await checkpointed;
    assert.ok(checkpoints[0]!.copied >= 4096, JSON.stringify(checkpoints[0]));
    // Keep writing across several windows: had the WAL not started over, its file would hold
    // them all; it stays near its cap.
    const until = checkpoints.length + 4;
    while (checkpoints.length < until && written < 40_000) await writeSome(kv, written++, 1);
    assert.ok(checkpoints.length >= until);
    assert.ok(
      walBytes(path) < 24 * MiB,
      `WAL file ${walBytes(path)} bytes after 5 windows of 8 MiB`,
    );
    for (let c = 0; c < written; c += 97) {
      const got = await kv.get<string>(["k", (c * 7919) % 100_003]);
      assert.equal(got.value?.length, 2000);
    }
  } finally {
    await pacer.stop();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stopped pacer leaves no snapshot behind: another connection checkpoints the whole WAL and empties it", async () => {
  const { dir, path, kv } = await store();
  const pacer = await paceCheckpoints(path, { pollMs: 20 });
  assert.ok(pacer);
  try {
    await writeSome(kv, 0, 150); // ~1500 frames: held, not checkpointed
    assert.ok(walFrames(path) > 1000);
    await pacer.stop();
    const db = new DatabaseSync(path);
    try {
      const row = db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number };
      assert.equal(row.busy, 0);
    } finally {
      db.close();
    }
    assert.equal(walBytes(path), 0);
    assert.equal((await kv.get<string>(["k", 0])).value?.length, 2000);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one pacer per store file: a second one is refused while the first runs, and taken once it stops", async () => {
  const { dir, path, kv } = await store();
  const first = await paceCheckpoints(path);
  assert.ok(first);
  assert.equal(await paceCheckpoints(path), null);
  await first.stop();
  const second = await paceCheckpoints(path);
  assert.ok(second);
  await second.stop();
  assert.equal(await paceCheckpoints(":memory:"), null);
  assert.equal(await paceCheckpoints("https://kv.example.test/db"), null);
  kv.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("while one process paces the checkpoints, check-and-set from it and from another process on the same file loses no committed increment", async () => {
  const { dir, path, kv } = await store();
  // A small cap: many windows, each a checkpoint and a WAL started over, during the race.
  const pacer = await paceCheckpoints(path, { maxWalBytes: 2 * MiB, pollMs: 5 });
  assert.ok(pacer);
  try {
    const other = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-kv",
        new URL("../../tests/support/kv_increments.ts", import.meta.url).pathname,
        path,
        "1500",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const here = await increment(kv, 1500, "here");
    const out = await other;
    assert.ok(out.success);
    const there = Number(new TextDecoder().decode(out.stdout).trim());
    const ctr = (await kv.get<number>(["ctr"])).value;
    assert.equal(ctr, here + there, `committed ${here} here and ${there} there`);
  } finally {
    await pacer.stop();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "the pacer's thread shows as kv-checkpoints in the process's threads, at the workers' lower priority",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const { dir, path, kv } = await store();
    const pacer = await paceCheckpoints(path);
    assert.ok(pacer);
    const named = () =>
      [...Deno.readDirSync("/proc/self/task")].map((t) => {
        const stat = Deno.readTextFileSync(`/proc/self/task/${t.name}/stat`);
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        return { name, nice: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]) };
      }).filter((t) => t.name === "kv-checkpoints");
    try {
      // The thread names itself once it has started: wait for it, within a deadline.
      for (let i = 0; i < 200 && named().length === 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.deepEqual(named(), [{ name: "kv-checkpoints", nice: WORKER_NICE }]);
    } finally {
      await pacer.stop();
      kv.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
