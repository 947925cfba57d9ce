import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openKvFile } from "./kv_file.ts";
import { paceCheckpoints } from "./checkpoint_pacer.ts";
import { walFrames } from "./checkpoint_worker.ts";

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
    while (walFrames(`${path}-shm`) < 2000) await writeSome(kv, written++, 1);
    assert.equal(checkpoints.length, 0, "no checkpoint before the cap");
    // Past the cap (4096 frames of 2 KiB), the thread checkpoints and the WAL starts over.
    while (checkpoints.length === 0) {
      await writeSome(kv, written++, 1);
      if (written > 5000) break;
    }
    await checkpointed;
    assert.ok(checkpoints[0]!.copied >= 4096, JSON.stringify(checkpoints[0]));
    const restartedFrom = walFrames(`${path}-shm`);
    for (let i = 0; i < 500 && walFrames(`${path}-shm`) >= restartedFrom; i++) {
      await writeSome(kv, written++, 1);
    }
    assert.ok(walFrames(`${path}-shm`) < restartedFrom, "the WAL started over");
    // Keep writing across several windows: the WAL file stays near its cap.
    const until = checkpoints.length + 2;
    while (checkpoints.length < until && written < 20_000) await writeSome(kv, written++, 1);
    assert.ok(checkpoints.length >= until);
    assert.ok(walBytes(path) < 12 * MiB, `WAL file ${walBytes(path)} bytes`);
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
    assert.ok(walFrames(`${path}-shm`) > 1000);
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
