import assert from "node:assert/strict";
import { tlsLevelFor } from "./tls_level.ts";

Deno.test("MX delivery is opportunistic by default, and require_tls still means encrypt", () => {
  assert.equal(tlsLevelFor({ requireTls: false }), "may");
  assert.equal(tlsLevelFor({ requireTls: true }), "encrypt");
  assert.equal(tlsLevelFor({ requireTls: true, tlsLevel: "dane" }), "dane");
});

Deno.test("a smarthost route that logs in verifies its peer unless the route itself says otherwise", () => {
  assert.equal(tlsLevelFor({ requireTls: false }, { auth: true }), "verify");
  // A profile's weaker level does not lower a logging-in route.
  assert.equal(tlsLevelFor({ requireTls: false, tlsLevel: "may" }, { auth: true }), "verify");
  assert.equal(tlsLevelFor({ requireTls: false }, { auth: true, tls: "encrypt" }), "encrypt");
  assert.equal(tlsLevelFor({ requireTls: false }, { auth: false }), "may");
  assert.equal(tlsLevelFor({ requireTls: false }, { auth: false, tls: "verify" }), "verify");
});
