import assert from "node:assert/strict";
import { every, LeaseKeeper, stopAll, Wakeup } from "./actor_loop.ts";
import { releaseLease, tryLease } from "../core/store/leases.ts";
import { FakeTimers } from "../tests/support/fake_timers.ts";

Deno.test("an actor's sleep ends at its time, or at once when woken, even by a wake-up that came before it", async () => {
  const timers = new FakeTimers();
  const wakeup = new Wakeup(timers);
  let ended = false;
  const sleeping = wakeup.sleep(1_000).then(() => (ended = true));
  assert.equal(await timers.fireNext(), 1_000);
  await sleeping;
  assert.ok(ended);

  // Woken while asleep: the sleep ends without its timer.
  const cut = wakeup.sleep(60_000);
  wakeup.wake();
  await cut;
  assert.equal(timers.pending, 0, "the timer is cleared");

  // Woken during a turn, after it looked: the turn's sleep ends at once.
  wakeup.wake();
  await wakeup.sleep(60_000);
  assert.equal(timers.pending, 0);

  // A wake-up before the turn started is one the turn has already seen.
  wakeup.wake();
  wakeup.startTurn();
  const full = wakeup.sleep(60_000);
  await timers.waitForTimer();
  assert.equal(await timers.fireNext(), 60_000);
  await full;
});

Deno.test("a lease is renewed only after a third of its TTL, by one attempt however many ask, and starts no work once stale", async () => {
  const kv = await Deno.openKv(":memory:");
  const key = ["lease", "site", "s"];
  let now = 1_000_000;
  let takes = 0;
  const lost: (string | null)[] = [];
  let gained = 0;
  const lease = new LeaseKeeper({
    ttlMs: 30_000,
    retryMinMs: 250,
    now: () => now,
    take: (at) => {
      takes++;
      return tryLease(kv, key, "node-a", 30_000, at);
    },
    release: () => releaseLease(kv, key, "node-a"),
    gained: () => gained++,
    lost: (holder) => lost.push(holder),
  });
  try {
    assert.deepEqual(await Promise.all([lease.hold(), lease.hold(), lease.hold()]), [
      true,
      true,
      true,
    ]);
    assert.equal(takes, 1, "concurrent callers share one attempt");
    assert.equal(gained, 1);
    now += 9_999;
    assert.ok(await lease.hold());
    assert.equal(takes, 1, "not renewed before a third of the TTL");
    assert.ok(lease.fresh());
    now += 10_001; // two thirds of the TTL since the last renewal
    assert.equal(lease.fresh(), false, "no work starts on a lease about to run out");
    assert.ok(await lease.hold());
    assert.equal(takes, 2);
    assert.ok(lease.fresh());

    // Another node takes it once it ran out unrenewed: this one notices at its next renewal.
    now += 30_001;
    assert.ok((await tryLease(kv, key, "node-b", 30_000, now)).ok);
    assert.equal(await lease.hold(), false);
    assert.deepEqual(lost, ["node-b"]);
    assert.equal(lease.held, false);
    assert.equal(lease.freeAt, now + 30_000);
    // Refused: not asked again before the retry minimum, however often it is asked.
    const before = takes;
    now += 249;
    assert.equal(await lease.hold(), false);
    assert.equal(takes, before);
    now += 1;
    assert.equal(await lease.hold(), false);
    assert.equal(takes, before + 1);
  } finally {
    kv.close();
  }
});

Deno.test("a supervisor scans at once and then every interval, and its stop waits for actors no longer than the grace", async () => {
  const timers = new FakeTimers();
  let scans = 0;
  const stopScanning = every(timers, 200, () => scans++);
  assert.equal(scans, 1, "the first scan runs at once");
  assert.equal(await timers.fireNext(), 200);
  assert.equal(await timers.fireNext(), 200);
  assert.equal(scans, 3);
  stopScanning();
  assert.equal(timers.pending, 0);

  // One actor stops at once, one never does: the grace ends the wait.
  const stopped: string[] = [];
  const quick = { stop: () => Promise.resolve(void stopped.push("quick")) };
  const stuck = { stop: () => new Promise<void>(() => stopped.push("stuck")) };
  const done = stopAll(timers, [quick, stuck], 5_000);
  assert.equal(await timers.fireNext(), 5_000);
  await done;
  assert.deepEqual(stopped, ["quick", "stuck"]);
  // Actors that all stop leave no grace timer behind.
  await stopAll(timers, [quick], 5_000);
  assert.equal(timers.pending, 0);
});
