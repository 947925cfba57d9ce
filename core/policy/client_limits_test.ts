import assert from "node:assert/strict";
import { ClientConnections } from "./client_limits.ts";
import { parseRate } from "./duration.ts";

Deno.test("ClientConnections refuses a client over its count while others still connect", () => {
  const limits = new ClientConnections({ perClient: 2, total: 0, rate: null, now: () => 0 });
  assert.deepEqual(limits.open("127.0.0.2"), { ok: true });
  assert.deepEqual(limits.open("127.0.0.2"), { ok: true });
  assert.deepEqual(limits.open("127.0.0.2"), {
    ok: false,
    reason: "client_count",
    retryAfterMs: 0,
  });
  assert.deepEqual(limits.open("127.0.0.1"), { ok: true });
  limits.close("127.0.0.2");
  assert.deepEqual(limits.open("127.0.0.2"), { ok: true });
  assert.equal(limits.openFor("127.0.0.2"), 2);
  assert.equal(limits.openFor(), 3);
});

Deno.test("ClientConnections holds a trusted address to its own, higher limit", () => {
  const limits = new ClientConnections({
    perClient: 2,
    trustedPerClient: 4,
    isTrusted: (address) => address === "10.0.0.1",
    total: 0,
    rate: null,
    now: () => 0,
  });
  for (let i = 0; i < 4; i++) assert.deepEqual(limits.open("10.0.0.1"), { ok: true });
  assert.equal(limits.open("10.0.0.1").ok, false);
  assert.equal(limits.open("10.0.0.2").ok, true);
  assert.equal(limits.open("10.0.0.2").ok, true);
  assert.deepEqual(limits.open("10.0.0.2"), {
    ok: false,
    reason: "client_count",
    retryAfterMs: 0,
  });
});

Deno.test("ClientConnections counts every client against the total", () => {
  const limits = new ClientConnections({ perClient: 0, total: 2, rate: null, now: () => 0 });
  assert.equal(limits.open("a").ok, true);
  assert.equal(limits.open("b").ok, true);
  assert.deepEqual(limits.open("c"), { ok: false, reason: "total", retryAfterMs: 0 });
  limits.close("a");
  limits.close("a"); // a second close of one session changes nothing
  assert.equal(limits.openFor(), 1);
  assert.equal(limits.open("c").ok, true);
});

Deno.test("ClientConnections lets a rate's whole count through, then one per interval", () => {
  let now = 0;
  const limits = new ClientConnections({
    perClient: 0,
    total: 0,
    rate: parseRate("3/min"),
    now: () => now,
  });
  for (let i = 0; i < 3; i++) {
    assert.equal(limits.open("a").ok, true);
    limits.close("a");
  }
  const refused = limits.open("a");
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.reason, "client_rate");
  assert.equal(!refused.ok && refused.retryAfterMs, 20_000);
  assert.equal(limits.open("b").ok, true, "another client has its own rate");
  now = 20_000;
  assert.equal(limits.open("a").ok, true);
});

Deno.test("ClientConnections forgets the oldest rate states beyond maxTracked", () => {
  const limits = new ClientConnections({
    perClient: 0,
    total: 0,
    rate: parseRate("1/h"),
    now: () => 0,
    maxTracked: 10,
  });
  for (let i = 0; i < 100; i++) {
    assert.equal(limits.open(`10.0.0.${i}`).ok, true);
    limits.close(`10.0.0.${i}`);
  }
  // The first addresses were forgotten, so they may connect again; the last are remembered.
  assert.equal(limits.open("10.0.0.0").ok, true);
  assert.equal(limits.open("10.0.0.99").ok, false);
});
