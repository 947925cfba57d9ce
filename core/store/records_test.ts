import assert from "node:assert/strict";
import { serialize } from "node:v8";
import { keys } from "./keys.ts";
import { listRows, loadMessage, loadMessages, loadRows } from "./queue.ts";
import { searchMessages } from "./message_index.ts";
import { listAccountEvents, listMessageEvents, putEvent, storedEvent } from "./events.ts";
import { messageOf, rowOf, storedMessage, storedRow } from "./records.ts";
import { newId } from "../ids.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "../model.ts";

async function withKvFile(run: (kv: Deno.Kv) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "postern_records_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  try {
    await run(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const AT = Date.UTC(2026, 11, 1, 12);

/** A 2 KB message accepted over SMTP at AT, its body in its due entry. */
function smtpMessage(id: string, recipients: number): MessageRecord {
  return {
    id,
    account: "default",
    mailFrom: "app@origin.test",
    size: 2187,
    chunks: 1,
    recipients,
    createdAt: AT,
    credentialId: null,
    clientAddress: "127.0.0.1",
    via: "smtp",
    messageId: "<m@origin.test>",
    subject: "hello",
    bodyInDue: true,
    events: [newId(AT)],
  };
}

/** Recipient `idx` of message `id`, delivered `afterMs` after AT, its delivery event listed. */
function deliveredRow(id: string, idx: number, rcpt: string, afterMs: number): RecipientRow {
  return {
    msgId: id,
    idx,
    rcpt,
    domain: "dest.test",
    status: "delivered",
    attempts: 1,
    queuedAt: AT,
    nextAttemptAt: null,
    lastReply: "250 OK",
    lastSource: "127.0.0.1",
    updatedAt: AT + afterMs,
    events: [newId(AT + afterMs)],
  };
}

Deno.test("messages, recipients and events a store already holds, in the shapes earlier versions wrote, read as they did", async () => {
  await withKvFile(async (kv) => {
    const id = newId(AT);
    const msg = smtpMessage(id, 2);
    const whole = deliveredRow(id, 0, "first@dest.test", 200);
    const slim: RecipientRow = { ...whole, idx: 1, rcpt: "Second@Dest.test", status: "queued" };
    const accepted: MessageEvent = { id: msg.events![0]!, msgId: id, type: "accepted", at: AT };
    const delivered: MessageEvent = {
      id: whole.events![0]!,
      msgId: id,
      type: "delivered",
      at: AT + 200,
      rcpt: whole.rcpt,
      reply: "250 OK",
      remoteHost: "127.0.0.1:25",
      tls: "TLSv1.3",
      tlsDetails: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", verified: false },
    };
    // As the versions before this one wrote them: the record under its long names, the oldest
    // rows whole, later ones without their message id and index, events whole or under one
    // letter with the id's placeholder (the session's verifyError came along).
    const { msgId: _m, idx: _i, ...slimStored } = slim;
    await kv.atomic()
      .set(keys.message(id), msg)
      .set(keys.recipient(id, 0), whole)
      .set(keys.recipient(id, 1), slimStored)
      .set(keys.indexRecipient("default", "first@dest.test", id), true)
      .set(keys.accountEvent("default", accepted.id), accepted)
      .set(keys.accountEvent("default", delivered.id), {
        m: id,
        t: "delivered",
        a: AT + 200,
        r: whole.rcpt,
        p: "250 OK",
        h: "127.0.0.1:25",
        s: "TLSv1.3",
        d: { v: "TLSv1.3", c: "TLS_AES_256_GCM_SHA384", f: false, e: "SELF_SIGNED" },
        i: 0,
      })
      .commit();

    assert.deepEqual(await loadMessage(kv, id), msg);
    assert.deepEqual((await loadMessages(kv, [id])).get(id), msg);
    assert.deepEqual(await listRows(kv, id), [whole, slim]);
    assert.deepEqual(await loadRows(kv, id, [0, 1]), [whole, slim]);
    const byTime = await searchMessages(kv, { account: "default", since: AT - 1, limit: 10 });
    assert.deepEqual(byTime.hits, [{ msg, rows: [whole, slim] }]);
    const byRcpt = await searchMessages(kv, {
      account: "default",
      recipient: "first@dest.test",
      limit: 10,
    });
    assert.deepEqual(byRcpt.hits, [{ msg, rows: [whole, slim] }]);
    const stored = {
      ...delivered,
      tlsDetails: { ...delivered.tlsDetails!, verifyError: "SELF_SIGNED" },
    };
    assert.deepEqual(await listMessageEvents(kv, id), [accepted, stored]);
    const page = await listAccountEvents(kv, "default", { until: AT + 60_000, limit: 10 });
    assert.deepEqual(page.events, [accepted, stored]);
  });
});

Deno.test("messages, recipients and events read back exactly as they were written, in fewer bytes", async () => {
  await withKvFile(async (kv) => {
    const id = newId(AT);
    const plain = smtpMessage(id, 1);
    const records: MessageRecord[] = [
      plain,
      {
        ...plain,
        id: newId(AT + 1),
        // Not the time the id encodes, a credential, another way in, every optional field.
        createdAt: AT + 0.5,
        credentialId: "cr_1",
        via: "http",
        spooled: true,
        chunks: 0,
        prefix: "DKIM-Signature: v=1\r\n",
        tags: ["a"],
        metadata: { k: "v" },
        verp: true,
        pool: "p",
        test: true,
      },
      // An id that is not a time-ordered one (tests and tools make such records).
      { ...plain, id: "m1" },
    ];
    for (const msg of records) {
      await kv.set(keys.message(msg.id), storedMessage(msg));
      assert.deepEqual(await loadMessage(kv, msg.id), msg);
    }
    const stored = (await kv.get(keys.message(id))).value as Record<string, unknown>;
    assert.equal(stored.id, undefined, "the id is the key's");
    assert.deepEqual(messageOf(keys.message(id), storedMessage(plain)), plain);

    const row = deliveredRow(id, 0, "User@Dest.test", 241);
    const rows: RecipientRow[] = [
      row,
      // Queued under the sandbox's domain, at another time, due, updated weeks later.
      {
        ...row,
        idx: 1,
        domain: "sandbox.test",
        status: "deferred",
        queuedAt: AT + 5,
        nextAttemptAt: AT + 60_000,
        updatedAt: AT + 40 * 86_400_000,
        lastCategory: "greylisted",
      },
      { ...row, idx: 2, updatedAt: AT + 0.25 },
      { ...row, msgId: "m1", updatedAt: AT - 3 },
    ];
    for (const r of rows) {
      const key = keys.recipient(r.msgId, r.idx);
      await kv.set(key, storedRow(r));
      assert.deepEqual(rowOf(key, (await kv.get(key)).value), r);
    }
    assert.deepEqual(await listRows(kv, id), rows.slice(0, 3));

    const delivered: MessageEvent = {
      id: newId(AT + 300),
      msgId: id,
      type: "delivered",
      at: AT + 241,
      rcpt: row.rcpt,
      reply: "250 OK",
      remoteHost: "127.0.0.1:25",
      localAddress: "127.0.0.1",
      tls: "TLSv1.3",
      tlsDetails: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: true },
    };
    const events: MessageEvent[] = [
      delivered,
      { ...delivered, id: newId(AT + 301), tls: undefined as unknown as string },
      { ...delivered, id: newId(AT + 302), tlsDetails: undefined, at: AT - 9e9 },
      { ...delivered, id: newId(AT + 303), type: "new-type" as MessageEvent["type"] },
      {
        ...delivered,
        id: newId(AT + 304),
        tls: "TLSv1.4",
        tlsDetails: {
          version: "TLSv1.4",
          cipher: "NEW-CIPHER",
          verified: true,
          verifiedBy: "dane",
        },
      },
      { id: newId(AT + 305), msgId: id, type: "held", at: AT + 0.5, score: 9.5, symbols: ["X"] },
    ].map((e) => JSON.parse(JSON.stringify(e)));
    for (const e of events) {
      const op = kv.atomic();
      putEvent(op, "default", e);
      await op.commit();
    }
    const page = await listAccountEvents(kv, "default", { until: AT + 60_000, limit: 10 });
    assert.deepEqual(page.events, events);
    // Stored types are places in EVENT_TYPES, stored times distances from the id's, TLS versions
    // and ciphers places in their lists: all fixed.
    const heldId = newId(AT + 400);
    const tlsId = newId(AT + 401);
    await kv.atomic()
      .set(keys.accountEvent("other", heldId), { i: 0, m: id, t: 8, A: -3, o: 1, y: [] })
      .set(keys.accountEvent("other", tlsId), {
        i: 0,
        m: id,
        t: 1,
        A: 0,
        d: { v: 1, c: 4, f: false },
      })
      .commit();
    const fixed = (await listAccountEvents(kv, "other", { until: AT + 60_000, limit: 2 })).events;
    assert.deepEqual(fixed, [
      { id: heldId, msgId: id, type: "held", at: AT + 397, score: 1, symbols: [] },
      {
        id: tlsId,
        msgId: id,
        type: "delivered",
        at: AT + 401,
        tlsDetails: { version: "TLSv1.2", cipher: "ECDHE-RSA-AES256-GCM-SHA384", verified: false },
        tls: "TLSv1.2",
      },
    ]);
    // What the store kept of the session's TLS is what /v1/messages shows.
    const withError = {
      ...delivered,
      tlsDetails: { ...delivered.tlsDetails!, verifyError: "SELF_SIGNED" },
    };
    assert.equal(JSON.stringify(storedEvent(withError)), JSON.stringify(storedEvent(delivered)));

    // In V8's format, as KV stores values: well under the bytes of the long names.
    const size = (value: unknown) => serialize(value).length;
    assert.ok(size(storedMessage(plain)) < size(plain) * 0.6);
    assert.ok(size(storedRow(row)) < size(row) * 0.6);
    assert.ok(size(storedEvent(delivered)) < size(delivered) * 0.7);
  });
});
