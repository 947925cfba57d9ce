import assert from "node:assert/strict";
import { completeHeaders, removeFields } from "./headers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("removeFields() drops named fields with their folded lines and returns them unfolded", () => {
  const { block, removed } = removeFields(
    "From: a@b\r\nX-Postern-Pool: warm\r\n  more\r\nSubject: s\r\n\tfolded\r\nx-postern-pool: b\r\n",
    new Set(["x-postern-pool"]),
  );
  assert.equal(block, "From: a@b\r\nSubject: s\r\n\tfolded\r\n");
  assert.deepEqual(removed, [
    { name: "x-postern-pool", value: "warm more" },
    { name: "x-postern-pool", value: "b" },
  ]);
});

Deno.test("completeHeaders() takes the pool from X-Postern-Pool and never lets the field leave", () => {
  const done = completeHeaders(
    enc.encode("From: a@b.test\r\nX-Postern-Pool: warm\r\nSubject: s\r\n"),
    {
      heloName: "c",
      clientAddress: "127.0.0.1",
      hostname: "relay.test",
      protocol: "ESMTP",
      queueId: "Q1",
      now: new Date(0),
    },
  );
  assert.equal(done.pool, "warm");
  assert.doesNotMatch(dec.decode(done.block), /X-Postern-Pool/i);
  assert.match(dec.decode(done.block), /From: a@b\.test\r\nSubject: s\r\n/);
});
