/**
 * Intake flow control's mechanism with driven timers: who waits, in which order, what lets a
 * waiting transaction go on (a first attempt ending, a transaction ending) and that none waits
 * longer than the delay.
 */
import assert from "node:assert/strict";
import { InFlow, type InFlowTicket } from "./in_flow.ts";
import { FakeTimers } from "../tests/support/fake_timers.ts";

const MB = 1024 * 1024;

function flow(limits = { messages: 100, bytes: 4 * MB }, maxDelayMs = 1_000) {
  const timers = new FakeTimers(0);
  return { timers, flow: new InFlow({ maxDelayMs, limits, now: timers.now, timers }) };
}

/** Whether `p` has settled once pending callbacks have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return done;
}

/** Accepts one message of `bytes` as a session would: admitted, queued, transaction over. */
async function accept(f: InFlow, id: string, bytes: number) {
  const ticket = await f.admit();
  f.queued(id, bytes);
  ticket.release();
}

Deno.test("while the backlog is full a new transaction waits until a first attempt ends", async () => {
  const { flow: f } = flow();
  for (const id of ["a", "b", "c", "d"]) await accept(f, id, MB);
  assert.deepEqual(f.backlog, { messages: 4, bytes: 4 * MB });
  const next = f.admit();
  assert.equal(await settled(next), false);
  f.done("a");
  assert.equal(await settled(next), true);
  assert.equal(f.paused, 1);
  assert.equal(f.timedOut, 0);
});

Deno.test("a transaction waits no longer than the delay, and then goes on", async () => {
  const { flow: f, timers } = flow();
  for (const id of ["a", "b", "c", "d"]) await accept(f, id, MB);
  const next = f.admit();
  await timers.advance(999);
  assert.equal(await settled(next), false);
  await timers.advance(1);
  assert.equal(await settled(next), true);
  assert.equal(f.timedOut, 1);
});

Deno.test("waiting transactions go on in the order they came, one per ended attempt", async () => {
  const { flow: f } = flow();
  for (const id of ["a", "b", "c", "d"]) await accept(f, id, MB);
  const first = f.admit(), second = f.admit();
  f.done("a");
  assert.equal(await settled(first), true);
  // The first is under way (it counts as a typical message): no room for the second yet.
  assert.equal(await settled(second), false);
  f.done("b");
  assert.equal(await settled(second), true);
});

Deno.test("transactions under way count, so many clients at once do not all find room", async () => {
  const { flow: f } = flow();
  await accept(f, "a", MB); // the typical size is now 1 MB
  f.done("a");
  const tickets: InFlowTicket[] = [];
  for (let i = 0; i < 4; i++) tickets.push(await f.admit());
  const fifth = f.admit();
  assert.equal(await settled(fifth), false);
  tickets[0]!.release(); // refused or abandoned: its place goes to the next
  assert.equal(await settled(fifth), true);
});

Deno.test("with nothing waiting for delivery, a message larger than the limit is not held back", async () => {
  const { flow: f } = flow();
  await accept(f, "huge", 10 * MB);
  const next = f.admit();
  assert.equal(await settled(next), false);
  f.done("huge");
  assert.equal(await settled(next), true);
  assert.equal(await settled(f.admit()), false, "the typical size is now above the limit");
});

Deno.test("a delay of 0 never holds a transaction, and counts nothing", async () => {
  const { flow: f } = flow({ messages: 1, bytes: 1 }, 0);
  for (let i = 0; i < 3; i++) await accept(f, `m${i}`, MB);
  assert.deepEqual(f.backlog, { messages: 0, bytes: 0 });
  assert.equal(f.paused, 0);
});

Deno.test("an entry never reported done stops counting after a while", async () => {
  const { flow: f, timers } = flow({ messages: 2, bytes: 100 * MB });
  await accept(f, "lost", MB);
  await accept(f, "lost2", MB);
  assert.equal(await settled(f.admit()), false);
  await timers.advance(10 * 60_000);
  assert.equal(await settled(f.admit()), true);
  assert.equal(f.backlog.messages, 0);
});
