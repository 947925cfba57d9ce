import assert from "node:assert/strict";
import { parseStsPolicy, parseStsRecord, stsMxMatches } from "./mta_sts.ts";

Deno.test("the _mta-sts TXT record gives its id; none or two valid records give none", () => {
  assert.equal(parseStsRecord(["v=STSv1; id=20261205T01"]), "20261205T01");
  assert.equal(parseStsRecord(["something else", "v=STSv1;id=abc"]), "abc");
  assert.equal(parseStsRecord(["v=STSv1; id=a", "v=STSv1; id=b"]), null);
  assert.equal(parseStsRecord(["v=spf1 -all"]), null);
  assert.equal(parseStsRecord(["v=STSv1; id=has-dash"]), null);
});

Deno.test("a policy file parses into mode, MX patterns and max_age; a broken one says why", () => {
  const ok = parseStsPolicy(
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.mail.example.test\r\nmax_age: 86400\r\n",
  );
  assert.ok(ok.ok);
  assert.deepEqual(ok.policy, {
    mode: "enforce",
    mx: ["mx1.example.test", "*.mail.example.test"],
    maxAge: 86400,
  });
  const bad = parseStsPolicy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n");
  assert.ok(!bad.ok);
  assert.match(bad.reason, /mode/);
  assert.ok(!parseStsPolicy("<html>not a policy</html>").ok);
  assert.ok(!parseStsPolicy("version: STSv1\nmode: enforce\nmax_age: 10\n").ok);
});

Deno.test("MX patterns match exact names and one leftmost wildcard label only", () => {
  const policy = { mx: ["mx1.example.test", "*.mail.example.test"] };
  assert.ok(stsMxMatches(policy, "MX1.example.test."));
  assert.ok(stsMxMatches(policy, "a.mail.example.test"));
  assert.ok(!stsMxMatches(policy, "a.b.mail.example.test"));
  assert.ok(!stsMxMatches(policy, "mail.example.test"));
  assert.ok(!stsMxMatches(policy, "evil.test"));
});
