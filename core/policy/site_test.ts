import assert from "node:assert/strict";
import { mxSiteKey, routeSiteKey } from "./site.ts";

Deno.test("mxSiteKey() is the same for every domain served by one set of MX hosts", () => {
  const cases: Array<[hosts: string[], want: string]> = [
    [
      ["aspmx.l.google.com", "alt1.aspmx.l.google.com"],
      "alt1.aspmx.l.google.com,aspmx.l.google.com",
    ],
    [
      ["ALT1.ASPMX.L.GOOGLE.COM.", "aspmx.l.google.com"],
      "alt1.aspmx.l.google.com,aspmx.l.google.com",
    ],
    [["mx.b.test", "mx.a.test", "mx.a.test"], "mx.a.test,mx.b.test"],
    [["example.org"], "example.org"],
  ];
  for (const [hosts, want] of cases) assert.equal(mxSiteKey(hosts), want, hosts.join(","));
});

Deno.test("routeSiteKey() keeps the route's order and ports", () => {
  assert.equal(
    routeSiteKey([{ host: "Relay1.test", port: 587 }, { host: "127.0.0.1", port: 2525 }]),
    "route:relay1.test:587|127.0.0.1:2525",
  );
});

Deno.test("site keys stay short enough for a KV key", () => {
  const hosts = Array.from({ length: 100 }, (_, i) => `mx${i}.very-long-provider-name.example`);
  const key = mxSiteKey(hosts);
  assert.ok(key.length <= 400, `length ${key.length}`);
  assert.match(key, /#[0-9a-f]{16}$/);
  assert.notEqual(key, mxSiteKey(hosts.slice(1)));
});
