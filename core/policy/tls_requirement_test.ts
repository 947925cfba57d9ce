import assert from "node:assert/strict";
import { requirementFor } from "./tls_requirement.ts";

const enforce = { mode: "enforce" as const, mx: ["*.mx.dest.test"], maxAge: 3600 };
const tlsa = [{ usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32) }];

Deno.test("an enforce policy demands a verified certificate from listed MX hosts and refuses others", () => {
  const listed = requirementFor("may", { name: "a.mx.dest.test", sts: enforce }, "dest.test");
  assert.deepEqual(listed, {
    ok: true,
    check: { kind: "ca", name: "a.mx.dest.test", by: "mta-sts" },
    policy: "sts",
  });
  const other = requirementFor("may", { name: "evil.test", sts: enforce }, "dest.test");
  assert.ok(!other.ok);
  assert.match(other.reason, /MTA-STS policy of dest\.test .*evil\.test/);
});

Deno.test("DANE beats MTA-STS, and testing policies change nothing but the report", () => {
  const both = requirementFor("may", { name: "a.mx.dest.test", sts: enforce, tlsa }, "dest.test");
  assert.ok(both.ok && both.check.kind === "dane");
  const testing = requirementFor("may", {
    name: "x.test",
    sts: { ...enforce, mode: "testing" },
  }, "d.test");
  assert.deepEqual(testing, { ok: true, check: { kind: "any", required: false }, policy: "sts" });
  // Unusable TLSA (PKIX-EE) is as none.
  const pkix = requirementFor("encrypt", {
    name: "x.test",
    tlsa: [{ ...tlsa[0]!, usage: 1 }],
  }, "d.test");
  assert.deepEqual(pkix, { ok: true, check: { kind: "any", required: true }, policy: "none" });
  assert.deepEqual(requirementFor("none", { name: "x.test", sts: enforce, tlsa }, "d.test"), {
    ok: true,
    check: { kind: "none" },
    policy: "none",
  });
});
