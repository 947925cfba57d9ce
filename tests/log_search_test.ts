/**
 * Delivery log search and retention: filters end to end through the real relay, the index's cost
 * on a store of many messages, and a sweep that leaves nothing of an expired message behind.
 */
import assert from "node:assert/strict";
import { startRelayWithSinks } from "./support/relay_fixture.ts";
import type { Relay } from "./support/relay_process.ts";
import { submit } from "./support/smtp_client.ts";
import { dumpKv, waitUntil } from "./support/operations.ts";
import { keys } from "../core/store/keys.ts";
import { newId } from "../core/ids.ts";
import type { MessageRecord, RecipientRow } from "../core/model.ts";
import {
  putMessageIndex,
  recipientIndexEntries,
  searchMessages,
} from "../core/store/message_index.ts";
import { sweepExpiredMessages, sweepExpiredStats } from "../core/store/retention.ts";
import { readStats, StatTally } from "../core/store/stats.ts";
import { ensureDefaultAccount } from "../core/store/accounts.ts";
import { putEvent } from "../core/store/events.ts";
import { newCredential } from "./support/tenants.ts";

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { POSTERN_RETRY_SCHEDULE: "1h", ...extra };
}

async function ids(relay: Relay, query: string): Promise<string[]> {
  const res = await relay.api(`/v1/messages?${query}`);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json.data.map((m: { id: string }) => m.id);
}

Deno.test("the delivery log filters by recipient, sender, tag, status and time, newest first, with a cursor", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: {
        "gone@dest.test": { code: 550, message: "5.1.1 no such user" },
        "later@dest.test": { code: 451, message: "4.7.1 later" },
      },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  try {
    const [a, b, c] = await submit(relay, [
      {
        from: "shop@origin.test",
        to: "Ann@Dest.test",
        tag: "a",
        headers: ["X-Postern-Tags: receipt"],
      },
      { from: "news@origin.test", to: ["ann@dest.test", "gone@dest.test"], tag: "b" },
      { from: "shop@origin.test", to: "later@dest.test", tag: "c" },
    ]);
    const between = Date.now();
    const d = (await relay.api("/v1/messages", {
      body: { from: "shop@origin.test", to: "zed@dest.test", text: "hi", tags: ["receipt"] },
    })).json.id;
    await waitUntil(async () => (await ids(relay, "status=bounced")).length === 1, "the bounce");
    await waitUntil(async () => (await ids(relay, "status=deferred")).length === 1, "the deferral");
    await waitUntil(
      async () => (await ids(relay, "status=delivered&from=shop@origin.test")).length === 2,
      "deliveries",
    );

    assert.deepEqual(await ids(relay, "recipient=ann@dest.test"), [b, a], "case-insensitive");
    assert.deepEqual(await ids(relay, "from=SHOP@origin.test"), [d, c, a]);
    assert.deepEqual(await ids(relay, "tag=receipt"), [d, a]);
    assert.deepEqual(
      await ids(relay, "tag=receipt&from=shop@origin.test&recipient=zed@dest.test"),
      [
        d,
      ],
    );
    assert.deepEqual(await ids(relay, "status=bounced"), [b]);
    assert.deepEqual(await ids(relay, "status=deferred&recipient=later@dest.test"), [c]);
    // (The bounce's notification to the sender is a message of the account too, sent later.)
    const since = new Date(between).toISOString();
    assert.deepEqual(await ids(relay, `since=${since}&from=shop@origin.test`), [d]);
    assert.deepEqual(await ids(relay, `until=${new Date(between).toISOString()}`), [c, b, a]);
    // A window given the wrong way round is a mistake to report, not an empty page.
    const reversed = await relay.api(
      `/v1/messages?since=${new Date(between + 60_000).toISOString()}&until=${since}`,
    );
    assert.equal(reversed.status, 400, JSON.stringify(reversed.json));
    assert.equal(reversed.json.error.code, "invalid_request");
    assert.equal(reversed.json.error.details[0].path, "since");

    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await relay.api(`/v1/messages?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      pages.push(...res.json.data.map((m: { id: string }) => m.id));
      cursor = res.json.next_cursor;
    } while (cursor);
    // The bounce's notification to the sender is a message of the account too.
    assert.deepEqual(pages.filter((id) => [a, b, c, d].includes(id)), [d, c, b, a]);
    assert.equal(new Set(pages).size, pages.length);

    const bad = await relay.api("/v1/messages?status=lost");
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, "invalid_request");
  } finally {
    await sink.close();
  }
});

Deno.test("the delivery log filters by subject and by credential", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const shop = await newCredential(relay, { name: "shop" });
  const news = await newCredential(relay, { name: "newsletter" });
  const send = async (token: string, subject: string) => {
    const res = await relay.api("/v1/messages", {
      token,
      body: { from: "app@origin.test", to: "ann@dest.test", subject, text: "hi" },
    });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    return res.json.id as string;
  };
  const receipt = await send(shop.password, "Your receipt #1042");
  const shipped = await send(shop.password, "Your order has shipped");
  const weekly = await send(news.password, "Weekly news: RECEIPTS explained");
  // Sent as an RFC 2047 encoded-word: found by what a mail client shows.
  const greeting = await send(news.password, "Grüße aus Köln");
  const [trusted] = await submit(relay, [{
    from: "app@origin.test",
    to: "ann@dest.test",
    tag: "receipt-t",
  }]);
  await sink.waitFor(5);

  const q = (query: string) => ids(relay, query);
  assert.deepEqual(await q(`credential=${shop.id}`), [shipped, receipt]);
  assert.deepEqual(await q(`credential=${news.id}`), [greeting, weekly]);
  assert.deepEqual(await q("subject=receipt"), [trusted!, weekly, receipt], "case-insensitive");
  assert.deepEqual(await q(`subject=${encodeURIComponent("grüße aus KÖLN")}`), [greeting]);
  assert.deepEqual(await q(`subject=RECEIPT&credential=${shop.id}`), [receipt]);
  assert.deepEqual(await q(`subject=receipt&credential=${news.id}`), [weekly]);
  assert.deepEqual(await q(`subject=shipped&credential=${news.id}`), []);
  assert.deepEqual(
    await q(
      `subject=your&credential=${shop.id}&since=${encodeURIComponent(new Date(0).toISOString())}`,
    ),
    [shipped, receipt],
  );
  // A key sees its whole account's log, the other credential's messages of it included.
  const own = await relay.api(`/v1/messages?credential=${shop.id}`, { token: news.password });
  assert.equal(own.status, 200);
  assert.deepEqual(own.json.data.map((m: { id: string }) => m.id), [shipped, receipt]);

  const bad = await relay.api("/v1/messages?credential=not-an-id");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "invalid_request");
  assert.equal(bad.json.error.details[0].path, "credential");
});

/** Writes `count` delivered messages as intake would (record, row, index keys), in batches. */
async function seed(
  kv: Deno.Kv,
  count: number,
  make: (
    i: number,
  ) => { rcpt: string; from: string; tags?: string[]; credential?: string; at: number },
) {
  for (let i = 0; i < count; i += 100) {
    const op = kv.atomic();
    for (let j = i; j < Math.min(count, i + 100); j++) {
      const m = make(j);
      const id = newId(m.at);
      const eventId = newId(m.at);
      const msg: MessageRecord = {
        id,
        account: "default",
        mailFrom: m.from,
        size: 10,
        chunks: 0,
        recipients: 1,
        createdAt: m.at,
        credentialId: m.credential ?? null,
        clientAddress: "127.0.0.1",
        via: "smtp",
        messageId: `<${id}@x>`,
        subject: "",
        ...(m.tags ? { tags: m.tags } : {}),
        // The record lists its commit's events, as the message commit writes it.
        events: [eventId],
      };
      const row: RecipientRow = {
        msgId: id,
        idx: 0,
        rcpt: m.rcpt,
        domain: m.rcpt.split("@")[1]!,
        status: "delivered",
        attempts: 1,
        queuedAt: m.at,
        nextAttemptAt: null,
        updatedAt: m.at,
      };
      op.set(keys.message(id), msg).set(keys.recipient(id, 0), row);
      putMessageIndex(op, msg);
      for (const [key, value] of recipientIndexEntries(msg, [row])) op.set(key, value);
      putEvent(op, "default", { id: eventId, msgId: id, type: "accepted", at: m.at });
    }
    const res = await op.commit();
    assert.ok(res.ok);
  }
}

Deno.test("a search reads only the index entries of its most selective term, however many messages are stored", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t0 = Date.UTC(2025, 0, 1);
    await seed(kv, 30_000, (i) => ({
      rcpt: i % 10_000 === 7 ? "needle@dest.test" : `user${i}@dest.test`,
      from: i % 2 ? "a@origin.test" : "b@origin.test",
      ...(i % 15_000 === 3 ? { tags: ["rare"] } : {}),
      ...(i % 10_000 === 11 ? { credential: "cr_rare" } : {}),
      at: t0 + i * 1000,
    }));
    const byRcpt = await searchMessages(kv, {
      account: "default",
      recipient: "needle@dest.test",
      limit: 50,
    });
    assert.equal(byRcpt.hits.length, 3);
    assert.equal(byRcpt.scanned, 3, "three index entries read for three matches");
    assert.equal(byRcpt.nextCursor, null);

    const byTag = await searchMessages(kv, { account: "default", tag: "rare", limit: 50 });
    assert.equal(byTag.hits.length, 2);
    assert.equal(byTag.scanned, 2);

    const byCredential = await searchMessages(kv, {
      account: "default",
      credential: "cr_rare",
      limit: 50,
    });
    assert.equal(byCredential.hits.length, 3);
    assert.equal(byCredential.scanned, 3, "the credential has its own index");

    // Subject, like status, is checked on the candidates, within the same cap.
    const bySubject = await searchMessages(kv, {
      account: "default",
      subject: "nothing has this",
      limit: 10,
      maxScan: 500,
    });
    assert.equal(bySubject.hits.length, 0);
    assert.equal(bySubject.scanned, 500);
    assert.ok(bySubject.nextCursor, "a cursor to go on from");

    // A term without an index (status) is checked on the candidates, and a cap bounds the work.
    const capped = await searchMessages(kv, {
      account: "default",
      status: "bounced",
      limit: 10,
      maxScan: 500,
    });
    assert.equal(capped.hits.length, 0);
    assert.equal(capped.scanned, 500);
    assert.ok(capped.nextCursor, "a cursor to go on from");

    const window = await searchMessages(kv, {
      account: "default",
      since: t0 + 100_000,
      until: t0 + 110_000,
      limit: 50,
    });
    assert.equal(window.hits.length, 10);
    assert.equal(window.scanned, 10, "a time range reads only its own slice");
  } finally {
    kv.close();
  }
});

Deno.test("retention deletes an expired message's body, rows, events and index entries, and keeps queued mail", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const old = Date.UTC(2024, 0, 1);
    await seed(kv, 3, (i) => ({
      rcpt: `r${i}@dest.test`,
      from: "a@origin.test",
      tags: ["t"],
      credential: "cr_old",
      at: old + i,
    }));
    // One old message still deferred: retention must not drop queued mail.
    const [keep] = await (async () => {
      const out: string[] = [];
      for await (const e of kv.list<MessageRecord>({ prefix: keys.messagePrefix() })) {
        out.push(e.value.id);
      }
      return out;
    })();
    const row = (await kv.get<RecipientRow>(keys.recipient(keep!, 0))).value!;
    await kv.set(keys.recipient(keep!, 0), { ...row, status: "deferred", nextAttemptAt: old });
    await kv.set(keys.body(keep!, 0), new Uint8Array(5));

    const result = await sweepExpiredMessages(kv, {
      retentionMs: 30 * 86_400_000,
      now: Date.UTC(2025, 0, 1),
    });
    assert.equal(result.deleted, 2);
    assert.equal(result.kept, 1);
    const left: string[] = [];
    for await (const e of kv.list({ prefix: [] })) {
      // An event log entry names its message in its value.
      left.push(JSON.stringify(e.key) + (e.key[0] === "evlog" ? JSON.stringify(e.value) : ""));
    }
    // Record, row, body, one event, and the sender, recipient, tag and credential index entries.
    assert.equal(left.length, 8, "the kept message's 8 keys");
    assert.ok(left.every((k) => k.includes(keep!)), `only the queued message remains: ${left}`);
  } finally {
    kv.close();
  }
});

Deno.test("a relay with a short retention sweeps delivered messages at start", async () => {
  await using fx = await startRelayWithSinks({ env: env({ POSTERN_RETENTION: "1s" }) });
  const { relay, sink } = fx;
  const [id] = await submit(relay, [{ from: "a@origin.test", to: "b@dest.test", tag: "r" }]);
  await sink.waitFor(1);
  await waitUntil(async () => (await ids(relay, "status=delivered")).length === 1, "delivery");
  const created = Date.now();
  await waitUntil(() => Date.now() - created > 1_200, "the retention period to pass");
  const second = fx.relay = await relay.restart();
  await second.waitForLog((l) => l.event === "retention.swept");
  assert.equal((await second.api(`/v1/messages/${id}`)).status, 404);
  assert.deepEqual(await ids(second, ""), []);
  await second.stop();
  const entries = await dumpKv(`${second.dataDir}/postern.kv`);
  const mentions = entries.filter((e) =>
    JSON.stringify(e.key).includes(id!) ||
    (e.key[0] === "evlog" && JSON.stringify(e.value).includes(id!))
  );
  assert.deepEqual(mentions.map((e) => e.key), [], "no key of the message is left");
});

Deno.test("retention drops stats counters of hours before the period and keeps the rest", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await ensureDefaultAccount(kv);
    const now = Date.UTC(2025, 5, 1);
    const tally = new StatTally();
    tally.add("default", "delivered", now - 40 * 86_400_000, { domain: "a.test" });
    tally.add("default", "delivered", now - 3_600_000, { domain: "a.test" });
    const op = kv.atomic();
    tally.apply(op);
    await op.commit();
    const deleted = await sweepExpiredStats(kv, { retentionMs: 30 * 86_400_000, now });
    assert.equal(deleted, 2, "the old hour's all and domain counters");
    const left = await readStats(kv, "default", "hour", now - 50 * 86_400_000, now);
    assert.equal(left.length, 1);
  } finally {
    kv.close();
  }
});
