import assert from "node:assert/strict";
import {
  addSuppression,
  listSuppressions,
  removeSuppression,
  type Suppression,
  SuppressionCache,
} from "./suppressions.ts";

function entry(address: string, reason = "invalid_recipient"): Suppression {
  return { address, reason, source: "api", createdAt: 0 };
}

Deno.test("SuppressionCache sees another node's changes at its next refresh, and only then", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const nodeA = new SuppressionCache(kv);
    const nodeB = new SuppressionCache(kv);
    await nodeA.refresh();
    await nodeB.refresh();
    await addSuppression(kv, "acct", entry("gone@dest.test"));
    nodeA.remember("acct", "gone@dest.test", "invalid_recipient");
    assert.equal(nodeA.reasonFor("acct", "GONE@dest.test"), "invalid_recipient");
    assert.equal(nodeB.reasonFor("acct", "gone@dest.test"), null, "not before its refresh");
    await nodeB.refresh();
    assert.equal(nodeB.reasonFor("acct", "gone@dest.test"), "invalid_recipient");
    assert.equal(nodeB.reasonFor("other", "gone@dest.test"), null, "lists are per account");
    assert.equal(await removeSuppression(kv, "acct", "Gone@Dest.test"), true);
    assert.equal(await removeSuppression(kv, "acct", "gone@dest.test"), false);
    await nodeB.refresh();
    assert.equal(nodeB.reasonFor("acct", "gone@dest.test"), null);
  } finally {
    kv.close();
  }
});

Deno.test("a reload that was reading while this node deleted a suppression does not bring it back", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const node = new SuppressionCache(kv);
    await addSuppression(kv, "acct", entry("back@dest.test"));
    await node.refresh();
    assert.equal(node.reasonFor("acct", "back@dest.test"), "invalid_recipient");
    // Another node's change starts a reload here; it reads the list as it is now...
    await addSuppression(kv, "acct", entry("other@dest.test"));
    const reloading = node.refresh();
    // ...while this node's API deletes one and applies it at once.
    const removed = removeSuppression(kv, "acct", "back@dest.test").then((ok) => {
      if (ok) node.forget("acct", "back@dest.test");
      return ok;
    });
    await Promise.all([reloading, removed]);
    assert.equal(await removed, true);
    assert.equal(node.reasonFor("acct", "back@dest.test"), null, "the delete stands");
    await node.refresh();
    assert.equal(node.reasonFor("acct", "back@dest.test"), null, "and the next reload agrees");
    assert.equal(node.reasonFor("acct", "other@dest.test"), "invalid_recipient");
  } finally {
    kv.close();
  }
});

Deno.test("listSuppressions() pages in address order with a cursor", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const a of ["c@x.test", "a@x.test", "b@x.test"]) {
      await addSuppression(kv, "acct", entry(a));
    }
    await addSuppression(kv, "other", entry("z@x.test"));
    const first = await listSuppressions(kv, "acct", { limit: 2 });
    assert.deepEqual(first.items.map((s) => s.address), ["a@x.test", "b@x.test"]);
    assert.ok(first.cursor);
    const second = await listSuppressions(kv, "acct", { limit: 2, cursor: first.cursor! });
    assert.deepEqual(second.items.map((s) => s.address), ["c@x.test"]);
    assert.equal(second.cursor, null);
  } finally {
    kv.close();
  }
});
