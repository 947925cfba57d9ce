import assert from "node:assert/strict";
import { completeHeaders, removeFields } from "./headers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const TRACE = {
  heloName: "c",
  clientAddress: "127.0.0.1",
  hostname: "relay.test",
  protocol: "ESMTP",
  queueId: "Q1",
  now: new Date(0),
};

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
    TRACE,
  );
  assert.equal(done.pool, "warm");
  assert.doesNotMatch(dec.decode(done.block), /X-Postern-Pool/i);
  assert.match(dec.decode(done.block), /From: a@b\.test\r\nSubject: s\r\n/);
});

Deno.test("completeHeaders() removes submitted Authentication-Results, ARC-* and Received-SPF fields", () => {
  const done = completeHeaders(
    enc.encode(
      "Authentication-Results: mx.example; dkim=pass\r\n\theader.d=bank.test\r\n" +
        "ARC-Seal: i=1; a=rsa-sha256; cv=none\r\nARC-Authentication-Results: i=1; spf=pass\r\n" +
        "Received-SPF: pass (bank.test)\r\nFrom: a@b.test\r\nFrom: c@d.test\r\nSender: e@f.test\r\n" +
        "Subject: s\r\n",
    ),
    TRACE,
  );
  const block = dec.decode(done.block);
  assert.doesNotMatch(block, /Authentication-Results|ARC-|Received-SPF|dkim=pass|bank\.test/i);
  assert.match(block, /From: a@b\.test\r\nFrom: c@d\.test\r\nSender: e@f\.test\r\nSubject: s\r\n/);
  assert.deepEqual(done.senders, { from: ["a@b.test", "c@d.test"], sender: ["e@f.test"] });
});

Deno.test("completeHeaders() reads From and Sender as UTF-8, as a mail client shows them", () => {
  const done = completeHeaders(enc.encode("From: CEO <ceo@bücher.test>\r\nSubject: s\r\n"), TRACE);
  assert.deepEqual(done.senders, { from: ["CEO <ceo@bücher.test>"], sender: [] });
});
