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

Deno.test("isPublicAddress() judges IPv6 forms that embed an IPv4 address by that address", () => {
  const table: Array<[string, boolean, string]> = [
    ["::127.0.0.1", false, "IPv4-compatible loopback"],
    ["::a9fe:a9fe", false, "IPv4-compatible link-local (cloud metadata)"],
    ["::10.0.0.1", false, "IPv4-compatible private"],
    ["::8.8.8.8", true, "IPv4-compatible public"],
    ["::ffff:a9fe:a9fe", false, "IPv4-mapped link-local"],
    ["::ffff:7f00:1", false, "IPv4-mapped loopback, hex"],
    ["::ffff:8.8.8.8", true, "IPv4-mapped public"],
    ["::ffff:0:7f00:1", false, "IPv4-translated loopback"],
    ["64:ff9b::7f00:1", false, "NAT64 loopback"],
    ["64:ff9b::a9fe:a9fe", false, "NAT64 link-local"],
    ["64:ff9b::192.168.0.1", false, "NAT64 private"],
    ["64:ff9b::808:808", true, "NAT64 public"],
    ["64:ff9b:1::a9fe:a9fe", false, "NAT64 local-use prefix"],
    ["2002:7f00:1::", false, "6to4 loopback"],
    ["2002:a9fe:a9fe::1", false, "6to4 link-local"],
    ["2002:0a00:0001::", false, "6to4 private"],
    ["2002:808:808::1", true, "6to4 public"],
    // Teredo: server 65.54.227.120, client stored inverted (~127.0.0.1 = 80ff:fffe).
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", false, "Teredo client loopback"],
    ["2001:0:a9fe:a9fe:8000:63bf:f7f7:f7f7", false, "Teredo server link-local"],
    ["2001:0:4136:e378:8000:63bf:f7f7:f7f7", true, "Teredo public server and client 8.8.8.8"],
    ["::", false, "unspecified"],
    ["::1", false, "loopback"],
  ];
  for (const [address, expected, name] of table) {
    assert.equal(isPublicAddress(address), expected, `${name}: ${address}`);
    assert.equal(isPublicAddress(`[${address}]`), expected, `${name}: [${address}]`);
  }
});

Deno.test("checkHttpTarget() refuses embedded-IPv4 literals and AAAA records, naming the IPv4 address", async () => {
  const resolver = zone({ "rebind.test": ["64:ff9b::a9fe:a9fe"] });
  const options = { resolver, allowed: () => false };
  for (
    const url of [
      "http://[::127.0.0.1]/x",
      "http://[::a9fe:a9fe]/x",
      "http://[::ffff:a9fe:a9fe]/x",
      "http://[64:ff9b::a9fe:a9fe]/x",
      "http://[2002:a9fe:a9fe::]/x",
      "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",
      "http://rebind.test/x",
    ]
  ) {
    const r = await checkHttpTarget(new URL(url), options);
    assert.equal(r.ok, false, url);
    if (!r.ok) {
      assert.match(r.reason, /embedding (169\.254\.169\.254|127\.0\.0\.1)|linkLocal|loopback/, url);
    }
  }
  const allowed = networkMatcher(["127.0.0.0/8"]);
  const loop = await checkHttpTarget(new URL("http://[::127.0.0.1]/x"), { resolver, allowed });
  assert.equal(loop.ok, true, "an operator-allowed network is allowed in any form");
});
