import assert from "node:assert/strict";
import { alignsWith, claimedDomains, fromHeaderDomains } from "./sender_domains.ts";

Deno.test("fromHeaderDomains() reads every mailbox and ignores display names and comments", () => {
  assert.deepEqual(fromHeaderDomains("App <app@Example.TEST>"), ["example.test"]);
  assert.deepEqual(fromHeaderDomains("app@example.test"), ["example.test"]);
  assert.deepEqual(fromHeaderDomains('"evil@other.test <x@other.test>" <a@b.test>'), ["b.test"]);
  assert.deepEqual(fromHeaderDomains("a@one.test, B <b@two.test>"), ["one.test", "two.test"]);
  assert.deepEqual(fromHeaderDomains("Team: a@one.test, b@two.test;"), ["one.test", "two.test"]);
  assert.deepEqual(fromHeaderDomains("a@one.test (c@x.test), b@two.test"), [
    "one.test",
    "two.test",
  ]);
  assert.deepEqual(fromHeaderDomains("undisclosed"), []);
});

Deno.test("alignsWith() accepts the domain itself and its subdomains only", () => {
  assert.ok(alignsWith("example.test", ["example.test"]));
  assert.ok(alignsWith("mail.example.test", ["example.test"]));
  assert.ok(!alignsWith("badexample.test", ["example.test"]));
  assert.ok(!alignsWith("example.test", ["mail.example.test"]));
});

Deno.test("claimedDomains() names every domain a reader could take from the field", () => {
  const claimed = (v: string) => claimedDomains(v).sort();
  assert.deepEqual(claimed("App <app@Example.TEST>"), ["example.test"]);
  assert.deepEqual(claimed("<x@a.test> <ceo@b.test>"), ["a.test", "b.test"]);
  assert.deepEqual(claimed('"ceo@b.test" <x@a.test>'), ["a.test", "b.test"]);
  assert.deepEqual(claimed("x@a.test (ceo@b.test)"), ["a.test", "b.test"]);
  assert.deepEqual(claimed("Team: x@a.test, ceo@b.test;"), ["a.test", "b.test"]);
  assert.deepEqual(claimed("=?utf-8?q?ceo=40b.test?= <x@a.test>"), ["a.test", "b.test"]);
  assert.deepEqual(claimed("=?utf-8?B?Y2VvQGIudGVzdA==?= <x@a.test>"), ["a.test", "b.test"]);
  assert.deepEqual(claimed("<ceo@b.test@a.test>"), ["a.test", "b.test"]);
  assert.deepEqual(claimed("x@[127.0.0.1]"), ["[127.0.0.1]"]);
  assert.deepEqual(claimed("undisclosed"), []);
});
