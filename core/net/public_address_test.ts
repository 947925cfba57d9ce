import assert from "node:assert/strict";
import { checkHttpTarget, isPublicAddress } from "./public_address.ts";
import { NoRecordsError, type Resolver } from "../mail/mx.ts";
import { networkMatcher } from "./cidr.ts";

function zone(records: Record<string, string[]>): Resolver {
  return {
    mx: () => Promise.resolve([]),
    addresses(name, type) {
      const list = (records[name] ?? []).filter((a) => a.includes(":") === (type === "AAAA"));
      return list.length ? Promise.resolve(list) : Promise.reject(new NoRecordsError(name));
    },
  };
}

Deno.test("isPublicAddress() refuses loopback, private, link-local and other special ranges", () => {
  for (
    const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fe80::1",
      "fc00::1",
      "::ffff:127.0.0.1",
      "224.0.0.1",
    ]
  ) assert.equal(isPublicAddress(a), false, a);
  for (const a of ["93.184.216.34", "2606:4700::1111", "8.8.8.8"]) {
    assert.equal(isPublicAddress(a), true, a);
  }
});

Deno.test("checkHttpTarget() refuses a name when any of its addresses is private", async () => {
  const resolver = zone({ "mixed.test": ["93.184.216.34", "10.0.0.5"] });
  const r = await checkHttpTarget(new URL("https://mixed.test/hook"), {
    resolver,
    allowed: () => false,
  });
  assert.equal(r.ok, false);
});

Deno.test("checkHttpTarget() lets an allowed network through and returns the address to dial", async () => {
  const resolver = zone({ "hooks.test": ["127.0.0.1"] });
  const allowed = networkMatcher(["127.0.0.0/8"]);
  assert.deepEqual(
    await checkHttpTarget(new URL("http://hooks.test:8080/x"), { resolver, allowed }),
    {
      ok: true,
      host: "hooks.test",
      address: "127.0.0.1",
      family: 4,
    },
  );
  const literal = await checkHttpTarget(new URL("http://[::1]/x"), { resolver, allowed });
  assert.equal(literal.ok, false);
});
