/**
 * KV calls per message end to end: the relay (with its store wrapped in a counter,
 * tests/support/kv_counting_main.ts) relays 2 KB one-recipient messages from parallel SMTP
 * sessions to a loopback sink, and every read and commit the main thread made for them is counted
 * by operation and key family. Writes are guarded by write_amplification_test.ts; this guards the
 * reads, which cost the main thread as much (each a promise, a key encoding and a value
 * deserialised) and which nothing else counts.
 *
 * `KV_COUNT_CALLERS=1` in the test's environment files each call under the function
 * that made it (printed, not asserted).
 */
import assert from "node:assert/strict";
import type { Relay } from "./support/relay_process.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { message2k, relayBatch } from "./support/load_2k.ts";
import { type KvCount, kvCounts, startCountingRelay } from "./support/kv_counts.ts";

const SESSIONS = 20;
const PER_SESSION = Number(Deno.env.get("KV_CALLS_PER_SESSION") ?? 15);
const WARMUP = 20;

async function sendSession(relay: Relay, first: number, count: number) {
  // One message per connection, as the bench's smtp-source sends.
  for (let n = first; n < first + count; n++) {
    const client = await SmtpClient.open(relay.smtpPort);
    try {
      await client.hello();
      await client.beginData("app@origin.test", `user${n}@dest.test`);
      await client.write(message2k(n, "kv calls", "kc"));
      const reply = await client.endData(30_000);
      assert.equal(reply.code, 250, reply.raw);
    } finally {
      await client.quit();
    }
  }
}

type Table = Record<string, KvCount>;

function diff(after: Table, before: Table, n: number): Table {
  const out: Table = {};
  for (const [k, a] of Object.entries(after)) {
    const b = before[k] ?? { calls: 0, entries: 0, bytes: 0 };
    if (a.calls === b.calls && a.entries === b.entries) continue;
    out[k] = {
      calls: (a.calls - b.calls) / n,
      entries: (a.entries - b.entries) / n,
      bytes: (a.bytes - b.bytes) / n,
    };
  }
  return out;
}

function render(table: Table): string {
  return Object.entries(table).sort((x, y) => y[1].calls - x[1].calls).map(([k, v]) =>
    `  ${v.calls.toFixed(3).padStart(8)} calls ${v.entries.toFixed(3).padStart(8)} entries ` +
    `${v.bytes.toFixed(0).padStart(6)} B  ${k}`
  ).join("\n");
}

/** Calls per message of the operations that read (a commit's own checks are not reads). */
function reads(table: Table): number {
  return Object.entries(table)
    .filter(([k]) => /^(get|getMany\(\d+\)|list) /.test(k))
    .reduce((n, [, v]) => n + v.calls, 0);
}

Deno.test("relaying a 2 KB one-recipient message costs at most two KV reads, its scope and sender domain read together once", async () => {
  const { sink, relay, countFile, stop } = await startCountingRelay({
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    KV_COUNT_CALLERS: Deno.env.get("KV_COUNT_CALLERS") ?? "0",
  });
  const send = (first: number, count: number) => sendSession(relay, first, count);
  try {
    // Start-up reads and writes (accounts, keys, the site's lease) settle before we count.
    await relayBatch(relay, sink, { first: 0, sessions: 2, per: WARMUP / 2 }, send);
    const before = await kvCounts(relay, countFile);
    const n = SESSIONS * PER_SESSION;
    await relayBatch(relay, sink, { first: WARMUP, sessions: SESSIONS, per: PER_SESSION }, send);
    const after = await kvCounts(relay, countFile);
    const byOp = diff(after.byOp, before.byOp, n);
    const perMessage = reads(byOp);
    console.log(`KV calls per message (${n} messages, ${SESSIONS} sessions):\n${render(byOp)}`);
    const byCaller = diff(after.byCaller, before.byCaller, n);
    if (Object.keys(byCaller).length > 0) console.log(`by caller:\n${render(byCaller)}`);
    console.log(`reads per message: ${perMessage.toFixed(2)}`);
    // Per message: one read of the transaction's scope at MAIL FROM (the account's settings,
    // re-read every transaction, with who holds the sender domain, which From: shares), 1.0;
    // the site actor's polls add ~0.1 at this pace (more on a slow machine, hence the slack).
    // Before issue 18's cut: 3.26 (the account, the sender domain twice, then the polls).
    assert.ok(perMessage <= 2, `${perMessage.toFixed(2)} KV reads per message`);
    // (Test mode's own look at the account, cached for a second, is left out: it is per second.)
    const scopeReads = Object.entries(byOp)
      .filter(([k]) => /^getMany\(\d+\) (account|credential|domain_name|domain)$/.test(k))
      .reduce((n, [, v]) => n + v.calls, 0);
    assert.ok(scopeReads <= 1.1, `${scopeReads.toFixed(2)} scope reads per message`);
  } finally {
    await stop();
  }
});
