import assert from "node:assert/strict";
import { takePosternHeaders } from "./postern_headers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("takePosternHeaders() reads and removes the idempotency key and tags, folded or not", () => {
  const block = enc(
    "From: a@b.test\r\nX-Postern-Idempotency-Key: order-42\r\nX-Postern-Tags: welcome,\r\n\tsignup\r\nSubject: hi\r\n",
  );
  const r = takePosternHeaders(block);
  assert.equal(r.idempotencyKey, "order-42");
  assert.deepEqual(r.tags, ["welcome", "signup"]);
  assert.equal(dec(r.block), "From: a@b.test\r\nSubject: hi\r\n");
});

Deno.test("takePosternHeaders() leaves a header section without instructions untouched", () => {
  const block = enc("From: a@b.test\r\nX-Postern-Test-Id: t1\r\n");
  assert.equal(takePosternHeaders(block).block, block);
});
