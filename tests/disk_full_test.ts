/**
 * A full disk while deliveries finish: the relay's data directory lives on a small tmpfs this
 * test mounts, a filler file takes the rest of it under load, and the sink answers the
 * transactions it held only once the store can no longer commit their outcomes. Each message
 * that got 250 must reach the sink exactly once after the filler goes, with no restart.
 *
 * Needs root (mount); without it the test is skipped and says why. Bounded: ≤ 300 messages, and
 * every wait has a deadline (≲ 60 s in all).
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { countTags, taggedMessage, waitUntil } from "./support/operations.ts";
import { runCommand } from "./support/run_command.ts";

const TMPFS_SIZE = "24m";

/** Mounts a tmpfs of `TMPFS_SIZE` on a fresh directory; null (and why) when that is impossible. */
async function mountTmpfs(): Promise<{ dir: string } | { skip: string }> {
  const dir = await Deno.makeTempDir({ prefix: "postern_full_" });
  const r = await runCommand("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE}`, "tmpfs", dir]);
  if (r.code !== 0) {
    await Deno.remove(dir).catch(() => {});
    return { skip: `cannot mount a tmpfs (needs root): ${r.stderr.trim() || `exit ${r.code}`}` };
  }
  return { dir };
}

async function unmount(dir: string) {
  await runCommand("umount", ["-l", dir]);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** Writes 1 MiB blocks to `path` until the file system is full. */
async function fillDisk(path: string): Promise<number> {
  const block = new Uint8Array(1024 * 1024).fill(0x55);
  const file = await Deno.open(path, { write: true, create: true });
  let written = 0;
  try {
    for (;;) {
      try {
        written += await file.write(block);
      } catch {
        return written; // ENOSPC: full
      }
      if (written > 1024 * 1024 * 1024) throw new Error("the tmpfs never filled up");
    }
  } finally {
    file.close();
  }
}

Deno.test("with the disk full while deliveries finish, every message that got 250 arrives exactly once once space returns, without a restart", async () => {
  const mounted = await mountTmpfs();
  if ("skip" in mounted) {
    console.log(`SKIPPED: ${mounted.skip}`);
    return;
  }
  const { dir } = mounted;
  let gateOpen = false;
  let held = 0;
  const waiting: (() => void)[] = [];
  const sink = await startSink({
    dataGate: () => {
      if (gateOpen) return Promise.resolve();
      held++;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
  });
  const relay = await startRelay({
    dataDir: dir,
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_RETRY_SCHEDULE: "1s",
      POSTERN_POLL_INTERVAL: "200ms",
    },
  });
  const acked: string[] = [];
  const refused: string[] = [];
  const client = await SmtpClient.open(relay.smtpPort);
  await client.hello();
  const send = async (tag: string, padding = 0) => {
    const body = taggedMessage(tag) + "x".repeat(padding);
    const reply = await client.send("app@origin.test", "user@dest.test", body);
    (reply.code === 250 ? acked : refused).push(tag);
    return reply.code;
  };
  try {
    // Load, with the sink holding its replies: the relay has transactions in flight.
    for (let i = 0; i < 60; i++) await send(`before-${i}`);
    await waitUntil(() => held >= 2, "the sink holding transactions in flight", {
      timeoutMs: 20_000,
      detail: () => `${held} held`,
    });

    // The disk fills up under load: a filler file, then submissions until intake itself fails.
    const filled = await fillDisk(`${dir}/filler`);
    let failedInARow = 0;
    for (let i = 0; i < 40 && failedInARow < 3; i++) {
      const code = await send(`during-${i}`, 64 * 1024);
      failedInARow = code === 250 ? 0 : failedInARow + 1;
    }
    assert.equal(failedInARow, 3, `intake kept answering 250 on a full disk (${filled} B filler)`);

    // The held transactions now get their 250, whose outcomes the store cannot take.
    gateOpen = true;
    for (const release of waiting.splice(0)) release();
    await waitUntil(
      () => relay.logs.some((l) => l.event === "delivery.outcome_held"),
      "an outcome the full store refused, held by the relay",
      { timeoutMs: 20_000 },
    );
    // Polls and retries come round many times while the store stays full; nothing may go twice.
    // Load goes on meanwhile (intake answers 451 for what it cannot store).
    const pollsWhileFull = Date.now() + 3_000;
    for (let i = 0; i < 200 && Date.now() < pollsWhileFull; i++) await send(`full-${i}`);
    await waitUntil(() => Date.now() > pollsWhileFull, "three seconds on a full disk");
    const fullCounts = countTags(sink.messages);
    const twiceWhileFull = [...fullCounts.values()].filter((n) => n > 1).length;
    assert.equal(twiceWhileFull, 0, "a message went out twice while the disk was full");

    // Space returns: held outcomes are committed and the queue drains, with no restart.
    await Deno.remove(`${dir}/filler`);
    const missing = () => {
      const seen = countTags(sink.messages);
      return acked.filter((tag) => !seen.has(tag));
    };
    await waitUntil(() => missing().length === 0, "every message that got 250 at the sink", {
      timeoutMs: 40_000,
      detail: () => `missing ${missing().slice(0, 10).join(", ")} of ${acked.length}`,
    });
    await waitUntil(
      () => relay.logs.some((l) => l.event === "delivery.outcomes_committed"),
      "the held outcomes committed",
      { timeoutMs: 20_000 },
    );
    await waitUntil(
      async () => {
        const queue = await relay.api("/v1/queue");
        // deno-lint-ignore no-explicit-any
        return (queue.json.data as any[]).every((s) => s.depth === 0);
      },
      "an empty queue",
      { timeoutMs: 20_000 },
    );
    const counts = countTags(sink.messages);
    const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
    const lost = missing().length;
    const heldEvents = relay.logs.filter((l) => l.event === "delivery.outcome_held").length;
    console.log(
      `disk full: ${acked.length} got 250, ${refused.length} got 451; ${heldEvents} outcomes ` +
        `held while full; ${duplicates} duplicates, ${lost} lost (filler ${filled} B)`,
    );
    assert.equal(duplicates, 0, JSON.stringify([...counts].filter(([, n]) => n > 1)));
    assert.equal(lost, 0);
    const stray = [...counts.keys()].filter((tag) => !acked.includes(tag));
    assert.deepEqual(stray, [], "only messages that got 250 were delivered");
  } finally {
    gateOpen = true;
    for (const release of waiting.splice(0)) release();
    await client.quit().catch(() => {});
    await relay.stop().catch(() => relay.kill9());
    await sink.close();
    await unmount(dir);
  }
});
