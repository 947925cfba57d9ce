import assert from "node:assert/strict";
import { checkSendScope, loadSendScope, type ScopeRefusal } from "./send_scope.ts";
import { createAccount } from "./store/accounts.ts";
import { createDomain, recordVerification } from "./store/domains.ts";
import { SecretBox } from "./auth/secret_box.ts";

const box = await SecretBox.fromMaterial(new TextEncoder().encode("k".repeat(32)));

async function verified(kv: Deno.Kv, account: string, name: string) {
  const d = await createDomain(kv, box, { account, name, algorithms: ["ed25519"] });
  assert.notEqual(d, "exists");
  if (d === "exists") return;
  const records = d.keys.map((k) => ({
    purpose: "dkim" as const,
    name: `${k.selector}._domainkey.${name}`,
    state: "verified" as const,
    selector: k.selector,
  }));
  await recordVerification(kv, d.id, records);
}

const why = (r: ScopeRefusal | null) => r && "why" in r ? r.why : r?.reason ?? null;

Deno.test("checkSendScope() gives each added domain and all its subdomains to its account only", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const a = (await createAccount(kv, { name: "a", settings: { requireVerifiedSender: false } }))!;
    const b = (await createAccount(kv, { name: "b" }))!;
    await verified(kv, b.id, "b.test");
    await createDomain(kv, box, { account: a.id, name: "news.b.test", algorithms: ["ed25519"] });
    const scope = await loadSendScope(kv, a.id, null);
    const sender = (envelopeSender: string) =>
      checkSendScope({ kv }, scope, { envelopeSender }).then(why);
    assert.equal(await sender("ceo@b.test"), "other_account");
    assert.equal(await sender("ceo@B.Test."), "other_account");
    // However many labels come before it: every parent is looked at.
    assert.equal(await sender(`x@${"a.".repeat(40)}b.test`), "other_account");
    // An IDN is the same domain whether written in A-labels or in Unicode.
    await createDomain(kv, box, {
      account: b.id,
      name: "xn--bcher-kva.test",
      algorithms: ["ed25519"],
    });
    assert.equal(await sender("ceo@xn--bcher-kva.test"), "other_account");
    assert.equal(await sender("ceo@bücher.test"), "other_account");
    // The most specific added domain decides.
    assert.equal(await sender("x@news.b.test"), null);
    assert.equal(await sender("x@free.test"), null);
    assert.equal(await sender(""), null);
    assert.equal(await sender(`x@${"a".repeat(300)}.test`), "invalid");

    const headers = (from: string[], sender: string[] = []) =>
      checkSendScope({ kv }, scope, { headers: { from, sender } }).then(why);
    assert.equal(await headers(["x@free.test", "y@free.test"]), "multiple_senders");
    assert.equal(
      await headers(["x@free.test"], ["s@free.test", "t@free.test"]),
      "multiple_senders",
    );
    assert.equal(await headers(["<x@free.test> <ceo@b.test>"]), "other_account");
    assert.equal(await headers(["x@free.test"], ["ceo@mail.b.test"]), "other_account");
    assert.equal(await headers(["CEO <ceo@Bücher.test>"]), "other_account");
    const many = Array.from({ length: 60 }, (_, i) => `x@d${i}.test`).join(", ");
    assert.equal(await headers([many]), "too_many");
    assert.equal(await headers([]), null);

    // B requires verified senders (the default for new accounts): b.test only.
    const own = await loadSendScope(kv, b.id, null);
    const bSender = (envelopeSender: string) =>
      checkSendScope({ kv }, own, { envelopeSender }).then(why);
    assert.equal(await bSender("x@mail.b.test"), null);
    assert.equal(await bSender("x@free.test"), "unverified");
    assert.equal(
      await checkSendScope({ kv }, own, { headers: { from: [], sender: [] } }).then(why),
      "no_from",
    );
  } finally {
    kv.close();
  }
});

Deno.test("checkSendScope() refuses a message over the recipient limit, for a credential or without one", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const a = (await createAccount(kv, { name: "a", settings: { requireVerifiedSender: false } }))!;
    const scope = await loadSendScope(kv, a.id, null);
    const deps = { kv, maxRecipients: 100 };
    assert.equal(await checkSendScope(deps, scope, { recipients: 100 }), null);
    assert.deepEqual(await checkSendScope(deps, scope, { recipients: 101 }), {
      reason: "too_many_recipients",
      limit: 100,
    });
  } finally {
    kv.close();
  }
});

Deno.test("a transaction reads who holds its sender domain once, and the next transaction reads it again", async () => {
  const raw = await Deno.openKv(":memory:");
  try {
    let reads = 0;
    const kv = new Proxy(raw, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "get" || prop === "getMany") {
          return (...args: unknown[]) => {
            reads++;
            return value.apply(target, args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const a = (await createAccount(kv, { name: "a", settings: { requireVerifiedSender: false } }))!;
    const b = (await createAccount(kv, { name: "b" }))!;
    const scope = await loadSendScope(kv, a.id, null);
    reads = 0;
    assert.equal(await checkSendScope({ kv }, scope, { envelopeSender: "x@b.test" }), null);
    const once = reads;
    assert.ok(once > 0);
    assert.equal(
      await checkSendScope({ kv }, scope, { headers: { from: ["x@b.test"], sender: [] } }),
      null,
    );
    assert.equal(reads, once, "the From domain, the envelope's, was not read again");
    // Another account adds the domain: the next transaction's scope sees it at once. Loaded
    // with its envelope sender, the scope's records and the domain's holders are one read.
    await createDomain(kv, box, { account: b.id, name: "b.test", algorithms: ["ed25519"] });
    reads = 0;
    const next = await loadSendScope(kv, a.id, null, "x@B.test");
    assert.equal(
      why(await checkSendScope({ kv }, next, { envelopeSender: "x@B.test" })),
      "other_account",
    );
    // One getMany for the account and the domain's names, one for the domain record found.
    assert.equal(reads, 2);
    // A sender with more parents than one read holds: its domain is read by the check itself.
    const deep = `x@${"a.".repeat(12)}b.test`;
    const deepScope = await loadSendScope(kv, a.id, null, deep);
    assert.equal(
      why(await checkSendScope({ kv }, deepScope, { envelopeSender: deep })),
      "other_account",
    );
  } finally {
    raw.close();
  }
});
