import assert from "node:assert/strict";
import { SecretBox } from "../auth/secret_box.ts";
import { keys } from "./keys.ts";
import { createDomain, deleteDomain, domainClaims, recordVerification } from "./domains.ts";
import { readScopeRecords } from "./scope_records.ts";

/** A real KV file; `reads` counts the store reads made through it. */
async function withKv(fn: (kv: Deno.Kv, box: SecretBox, reads: () => number) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "postern-scope-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite`);
  let count = 0;
  const counted = new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "get" || prop === "getMany") {
        return (...args: unknown[]) => {
          count++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  try {
    await fn(counted, await SecretBox.fromMaterial(new Uint8Array(32).fill(7)), () => count);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a sender's scope says who holds its domain as the domain is verified, removed and added again by another account; a known domain costs one read", async () => {
  await withKv(async (kv, box, reads) => {
    const scope = async (domain: string) => {
      const before = reads();
      const read = await readScopeRecords(kv, "acct", null, domain);
      return { claims: read.claims, reads: reads() - before };
    };
    const d = await createDomain(kv, box, {
      account: "acct",
      name: "shop.test",
      algorithms: ["ed25519"],
    });
    assert.ok(d !== "exists");
    const claim = (account: string, verified: boolean) => [
      { name: "shop.test", account, verified },
    ];
    assert.deepEqual((await scope("mail.shop.test")).claims, claim("acct", false));
    // Known now: its claim comes in the same read as its name, and follows its verification.
    assert.deepEqual(await scope("mail.shop.test"), { claims: claim("acct", false), reads: 1 });
    const selector = d.keys[0]!.selector;
    await recordVerification(kv, d.id, [
      { purpose: "dkim", name: `${selector}._domainkey.shop.test`, state: "verified", selector },
    ]);
    assert.deepEqual(await scope("mail.shop.test"), { claims: claim("acct", true), reads: 1 });
    await recordVerification(kv, d.id, []);
    assert.deepEqual(await scope("shop.test"), { claims: claim("acct", false), reads: 1 });
    // Removed, then added again by another account under a new id: the new holder at once.
    await deleteDomain(kv, d.id);
    assert.deepEqual(await scope("mail.shop.test"), { claims: [], reads: 1 });
    const taken = await createDomain(kv, box, {
      account: "other",
      name: "shop.test",
      algorithms: [],
    });
    assert.ok(taken !== "exists");
    assert.deepEqual((await scope("shop.test")).claims, claim("other", false));
    assert.deepEqual(await scope("shop.test"), { claims: claim("other", false), reads: 1 });
    await deleteDomain(kv, taken.id);
    const again = await createDomain(kv, box, {
      account: "acct",
      name: "shop.test",
      algorithms: [],
    });
    assert.ok(again !== "exists");
    assert.deepEqual((await scope("shop.test")).claims, claim("acct", false));
    assert.deepEqual((await scope("shop.test")).claims, await domainClaims(kv, "shop.test"));
    // A domain without its claim record (an older store) is still found with its owner.
    await kv.delete(keys.domainClaim(again.id));
    assert.deepEqual((await scope("shop.test")).claims, claim("acct", false));
  });
});
