import assert from "node:assert/strict";
import { SecretBox } from "../auth/secret_box.ts";
import { keys } from "./keys.ts";
import { createDomain, deleteDomain, domainClaims, recordVerification } from "./domains.ts";

async function withKv(fn: (kv: Deno.Kv, box: SecretBox) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "postern-claims-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite`);
  try {
    await fn(kv, await SecretBox.fromMaterial(new Uint8Array(32).fill(7)));
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("who holds a domain follows its verification and removal, for the domain and its subdomains", async () => {
  await withKv(async (kv, box) => {
    const d = await createDomain(kv, box, {
      account: "acct",
      name: "shop.test",
      algorithms: ["ed25519"],
    });
    assert.ok(d !== "exists");
    const claim = (verified: boolean) => [{ name: "shop.test", account: "acct", verified }];
    assert.deepEqual(await domainClaims(kv, "shop.test"), claim(false));
    assert.deepEqual(await domainClaims(kv, "mail.shop.test"), claim(false));
    const selector = d.keys[0]!.selector;
    await recordVerification(kv, d.id, [
      { purpose: "dkim", name: `${selector}._domainkey.shop.test`, state: "verified", selector },
    ]);
    assert.deepEqual(await domainClaims(kv, "mail.shop.test"), claim(true));
    // The record gone from DNS: unverified again.
    await recordVerification(kv, d.id, []);
    assert.deepEqual(await domainClaims(kv, "shop.test"), claim(false));
    await deleteDomain(kv, d.id);
    assert.deepEqual(await domainClaims(kv, "shop.test"), []);
  });
});

Deno.test("a domain stored before claim records is still found with its owner", async () => {
  await withKv(async (kv, box) => {
    const d = await createDomain(kv, box, { account: "acct", name: "old.test", algorithms: [] });
    assert.ok(d !== "exists");
    const other = await createDomain(kv, box, {
      account: "acct2",
      name: "a.old.test",
      algorithms: [],
    });
    assert.ok(other !== "exists");
    // As an older store holds it: the domain record and its name, no claim record.
    await kv.delete(keys.domainClaim(d.id));
    assert.deepEqual(await domainClaims(kv, "b.a.old.test"), [
      { name: "a.old.test", account: "acct2", verified: false },
      { name: "old.test", account: "acct", verified: false },
    ]);
  });
});
