import assert from "node:assert/strict";
import { claimNodeId } from "./node_id.ts";

Deno.test("claimNodeId() hands a restart the id of the process it replaces", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_node_id_" });
  try {
    const first = await claimNodeId(dataDir, "host-a");
    assert.match(first.id, /^node_[a-z0-9]{10}$/);
    first.file?.close(); // the process ends
    const second = await claimNodeId(dataDir, "host-a");
    assert.equal(second.id, first.id);
    second.file?.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("claimNodeId() gives a second live process on the same data dir an id of its own", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_node_id_" });
  try {
    const holder = await claimNodeId(dataDir, "host-a");
    const other = await claimNodeId(dataDir, "host-a");
    assert.notEqual(other.id, holder.id);
    assert.equal(other.file, null);
    holder.file?.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("claimNodeId() does not carry an id over to a data dir copied to another host", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_node_id_" });
  try {
    const first = await claimNodeId(dataDir, "host-a");
    first.file?.close();
    const elsewhere = await claimNodeId(dataDir, "host-b");
    assert.notEqual(elsewhere.id, first.id);
    elsewhere.file?.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
