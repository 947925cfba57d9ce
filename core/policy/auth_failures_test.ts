import assert from "node:assert/strict";
import { AuthFailures } from "./auth_failures.ts";

function tracker(now: { t: number }, limit = 3) {
  return new AuthFailures({ limit, coolDownMs: 60_000, delayMs: 100, now: () => now.t });
}

Deno.test("AuthFailures slows each failure more and locks the client after the limit", () => {
  const now = { t: 0 };
  const auth = tracker(now);
  assert.equal(auth.fail("10.0.0.1", "alice"), 100);
  assert.equal(auth.fail("10.0.0.1", "bob"), 200);
  assert.equal(auth.locked("10.0.0.1", "carol"), null);
  assert.equal(auth.fail("10.0.0.1", "carol"), 300);
  assert.equal(auth.locked("10.0.0.1", "dave"), "client");
  assert.equal(auth.locked("10.0.0.2", "dave"), null, "another client is not locked");
  now.t = 59_999;
  assert.equal(auth.locked("10.0.0.1", "dave"), "client");
  now.t = 60_000;
  assert.equal(auth.locked("10.0.0.1", "dave"), null, "the cool-down ends the lock");
});

Deno.test("AuthFailures locks a username guessed from many addresses", () => {
  const now = { t: 0 };
  const auth = tracker(now);
  for (let i = 0; i < 3; i++) auth.fail(`10.0.0.${i}`, "Alice");
  assert.equal(auth.locked("10.9.9.9", "alice"), "username");
  assert.equal(auth.locked("10.9.9.9", "bob"), null);
});

Deno.test("AuthFailures: a success clears the username's failures but not the client's", () => {
  const now = { t: 0 };
  const auth = tracker(now);
  auth.fail("10.0.0.1", "alice");
  auth.fail("10.0.0.1", "alice");
  auth.succeed("alice");
  assert.equal(auth.fail("10.0.0.2", "alice"), 100, "the username starts again");
  assert.equal(auth.fail("10.0.0.1", "bob"), 300, "the client does not");
});

Deno.test("AuthFailures forgets failures older than the cool-down and caps the delay", () => {
  const now = { t: 0 };
  const auth = tracker(now, 0);
  for (let i = 1; i <= 20; i++) assert.equal(auth.fail("a", ""), Math.min(i, 10) * 100);
  assert.equal(auth.locked("a", ""), null, "limit 0 never locks");
  now.t = 60_000;
  assert.equal(auth.fail("a", ""), 100);
});
