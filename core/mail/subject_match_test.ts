import assert from "node:assert/strict";
import { readableSubject, subjectContains } from "./subject_match.ts";
import { bytesToBinary } from "./headers.ts";

Deno.test("a subject is found as written and as a mail client shows it, ignoring case", () => {
  const encoded = "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=";
  assert.equal(readableSubject(encoded), "Grüße aus Köln");
  assert.ok(subjectContains(encoded, "AUS KÖLN"));
  assert.ok(subjectContains(encoded, "=?utf-8?q?"), "the stored form counts too");
  // SMTPUTF8 (RFC 6532): raw UTF-8 bytes, stored one char per byte.
  const raw = bytesToBinary(new TextEncoder().encode("Rechnung für März"));
  assert.ok(subjectContains(raw, "für mär"));
  assert.ok(!subjectContains(raw, "april"));
  assert.equal(readableSubject("=?bogus"), "=?bogus", "what does not decode is read as written");
});
