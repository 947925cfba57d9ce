import assert from "node:assert/strict";
import { keys } from "./keys.ts";
import { Committer } from "./committer.ts";
import { commitMessage } from "./messages.ts";
import { attemptChange } from "./deliveries.ts";
import { type DueEntry, listDue, readClaimedDue } from "./queue.ts";
import { storedMessage } from "./records.ts";
import { newId } from "../ids.ts";
import type { MessageRecord, RecipientRow } from "../model.ts";

const AT = Date.UTC(2026, 11, 1, 12);
const PREFIX = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\r\n" +
  " s=pst202612e; t=1796126400; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
  " h=from:from:to:subject:message-id;\r\n" +
  " b=" + "A".repeat(86) + "==\r\n";
const encoder = new TextEncoder();

async function withStore(run: (committer: Committer) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "postern_due_prefix_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  try {
    await run(new Committer(kv));
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function signedMessage(size: number): { msg: MessageRecord; body: Uint8Array } {
  const body = encoder.encode(
    "From: app@example.test\r\nSubject: hello\r\n\r\n" + "x".repeat(size) + "\r\n",
  );
  const msg: MessageRecord = {
    id: newId(AT),
    account: "default",
    mailFrom: "app@example.test",
    size: body.length,
    chunks: 1,
    recipients: 1,
    createdAt: AT,
    credentialId: null,
    clientAddress: "127.0.0.1",
    via: "smtp",
    messageId: "<m@example.test>",
    subject: "hello",
    prefix: PREFIX,
  };
  return { msg, body };
}

function queuedRow(msg: MessageRecord): RecipientRow {
  return {
    msgId: msg.id,
    idx: 0,
    rcpt: "user@dest.test",
    domain: "dest.test",
    status: "queued",
    attempts: 0,
    queuedAt: AT,
    nextAttemptAt: AT,
    updatedAt: AT,
  };
}

/** Commits `msg` with one queued recipient and `body` as its only chunk. */
async function commit(committer: Committer, msg: MessageRecord, body: Uint8Array) {
  const row = queuedRow(msg);
  const committed = await commitMessage(committer, {
    msg,
    rows: [row],
    byDomain: new Map([["dest.test", [0]]]),
    event: { id: newId(AT), msgId: msg.id, type: "accepted", at: AT },
    inlineChunks: [body],
    baseChunk: 0,
    staged: false,
    suppressedEvents: [],
    idempotency: null,
  });
  assert.ok(committed);
  return { committed, row };
}

/** The one due entry of dest.test, as a site actor lists it from the store. */
async function onlyDue(kv: Deno.Kv): Promise<DueEntry> {
  const due = await listDue(kv, "dest.test", Number.MAX_SAFE_INTEGER, 10);
  assert.equal(due.length, 1);
  return due[0]!;
}

Deno.test("a signed message whose 2 KB body rides in its due entry keeps its DKIM-Signature there, not in its record, and delivery reads it back exactly, also after a deferral", async () => {
  await withStore(async (committer) => {
    const kv = committer.kv;
    const { msg, body } = signedMessage(2000);
    const { committed, row } = await commit(committer, msg, body);
    assert.equal(committed.due[0]!.prefix, PREFIX, "the entry handed to delivery in memory");

    const record = (await kv.get<Record<string, unknown>>(keys.message(msg.id))).value!;
    assert.ok(!("prefix" in record), "the record stays within its B-tree page");
    const due = await onlyDue(kv);
    assert.deepEqual(due.body, body);
    assert.equal(due.prefix, PREFIX);
    const claimed = await readClaimedDue(kv, due);
    assert.ok(claimed.current);
    assert.equal(claimed.msg?.prefix, PREFIX);
    assert.equal(claimed.msg?.bodyInDue, true);

    // A deferral files the next entry: the body and the prefix move on with it.
    const stamp = await committer.commit(attemptChange(
      due,
      [{
        row,
        status: "deferred",
        event: "deferred",
        reply: "451 4.3.0 try later",
        category: null,
        nextAttemptAt: AT + 60_000,
        countsAsAttempt: true,
      }],
      { message: msg },
      AT + 1_000,
    ));
    assert.ok(stamp);
    const next = await onlyDue(kv);
    assert.equal(next.dueAt, AT + 60_000);
    assert.deepEqual(next.body, body);
    assert.equal(next.prefix, PREFIX);
    assert.equal((await readClaimedDue(kv, next)).msg?.prefix, PREFIX);
  });
});

Deno.test("a signed message with a small body keeps its DKIM-Signature in its record, as before", async () => {
  await withStore(async (committer) => {
    const kv = committer.kv;
    const { msg, body } = signedMessage(10);
    await commit(committer, msg, body);
    const record = (await kv.get<Record<string, unknown>>(keys.message(msg.id))).value!;
    assert.equal(record.prefix, PREFIX);
    const due = await onlyDue(kv);
    assert.equal(due.prefix, undefined);
    assert.equal((await readClaimedDue(kv, due)).msg?.prefix, PREFIX);
  });
});

Deno.test("a message stored before prefixes rode in due entries (its prefix in its record, its body in its entry) is delivered with its prefix", async () => {
  await withStore(async (committer) => {
    const kv = committer.kv;
    const { msg, body } = signedMessage(2000);
    await kv.set(keys.message(msg.id), storedMessage({ ...msg, bodyInDue: true }));
    await kv.set(keys.due("dest.test", AT, msg.id, 0), { rcpts: [0], body });
    const due = await onlyDue(kv);
    assert.equal(due.prefix, undefined);
    const claimed = await readClaimedDue(kv, due);
    assert.equal(claimed.msg?.prefix, PREFIX);
    assert.deepEqual(claimed.msg, { ...msg, bodyInDue: true });
  });
});
