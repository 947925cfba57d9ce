/**
 * The session deadlines that share one timer: each runs once it is due, in the order they fall
 * due, a cancelled one never runs, and nothing is left to hold the process once none is pending.
 */
import assert from "node:assert/strict";
import { Deadlines, IdleTimeout } from "./deadlines.ts";

/** A timer that keeps the test's event loop running while it awaits the deadlines. */
const keepAlive = () => setTimeout(() => {}, 60_000);

Deno.test("session deadlines run in the order they fall due, not the order they were set, and a cancelled one never runs", async () => {
  // The clock stands still while the deadlines are set: on a busy machine a real one moved
  // more than 10 ms between two calls, and "second" fell due after "third" (CI saw it once).
  let now = 0;
  const deadlines = new Deadlines(() => now);
  const ran: string[] = [];
  const { promise: allRan, resolve } = Promise.withResolvers<void>();
  const awake = keepAlive(); // the deadlines' timer does not keep the process alive
  const note = (name: string) => () => {
    ran.push(name);
    if (ran.length === 3) resolve();
  };
  deadlines.after(30, note("third"));
  deadlines.after(10, note("first"));
  const dropped = deadlines.after(15, note("cancelled"));
  deadlines.after(20, note("second"));
  deadlines.cancel(dropped);
  now = 100; // all due when the timer, set for the earliest, fires
  await allRan;
  clearTimeout(awake);
  assert.deepEqual(ran, ["first", "second", "third"]);
  assert.equal(deadlines.size, 0, "nothing pending, so no timer is left");
});

Deno.test("a session deadline cancelled by another that falls due in the same turn does not run", async () => {
  let now = 0;
  const deadlines = new Deadlines(() => now);
  const ran: string[] = [];
  const { promise: fired, resolve } = Promise.withResolvers<void>();
  const awake = keepAlive();
  deadlines.after(1, () => {
    ran.push("first");
    deadlines.cancel(second);
    queueMicrotask(resolve);
  });
  const second = deadlines.after(2, () => ran.push("second"));
  now = 100; // both are due by the time the timer fires
  await fired;
  clearTimeout(awake);
  assert.deepEqual(ran, ["first"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("cancelling the last pending session deadline leaves no timer behind", () => {
  const deadlines = new Deadlines();
  const a = deadlines.after(60_000, () => assert.fail("cancelled, must not run"));
  const b = deadlines.after(30_000, () => assert.fail("cancelled, must not run"));
  deadlines.cancel(b);
  deadlines.cancel(a);
  deadlines.cancel(a); // twice is harmless
  assert.equal(deadlines.size, 0);
  // Deno's timer sanitizer fails this test if a timer were still set.
});

Deno.test("an idle timeout ends a whole wait after the last touch, and a restart for a shorter wait moves it closer", async () => {
  const deadlines = new Deadlines();
  const awake = keepAlive();
  let wait = 400;
  const idleAt: number[] = [];
  const { promise: idled, resolve } = Promise.withResolvers<void>();
  const idle = new IdleTimeout(deadlines, () => wait, () => {
    idleAt.push(deadlines.now());
    resolve();
  });
  idle.restart();
  // Touched before the wait is over: the deadline, when it comes, waits again for what is left.
  await new Promise((r) => setTimeout(r, 100));
  idle.touch();
  const touchedAt = deadlines.now();
  // A shorter wait from here on, as a connection that sent a command with a shorter reply time.
  wait = 200;
  idle.restart();
  const restartedAt = deadlines.now();
  await idled;
  clearTimeout(awake);
  assert.equal(idleAt.length, 1);
  assert.ok(idleAt[0]! - touchedAt >= 200, "idle no sooner than the wait after the last touch");
  assert.ok(idleAt[0]! - restartedAt >= 200);
  assert.equal(deadlines.size, 0, "nothing left pending");
  idle.stop(); // after it ran: nothing to drop
});
