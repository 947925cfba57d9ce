/**
 * KV reads per message on the submission path as mail apps use it: nodemailer opens a connection
 * per message, upgrades it with STARTTLS, logs in with AUTH PLAIN and sends one 2 KB message, to
 * the relay with its store wrapped in a counter (tests/support/kv_counting_main.ts). The login's
 * checks (the lockouts of the client and the username, the username's failure counts, the
 * credential) are one store read; the transaction's scope at MAIL FROM is another.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import type { Relay } from "./support/relay_process.ts";
import { message2k, relayBatch } from "./support/load_2k.ts";
import { createCredential, type NewCredential } from "./support/relay_api.ts";
import { type KvCount, kvCounts, startCountingRelay } from "./support/kv_counts.ts";

const SESSIONS = 10;
const PER_SESSION = 10;

async function sendSession(relay: Relay, login: NewCredential, first: number, count: number) {
  for (let n = first; n < first + count; n++) {
    // A transport per message: a connection, STARTTLS and a login per message.
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: relay.smtpPort,
      secure: false,
      requireTLS: true,
      name: "app.client.test",
      auth: { user: login.username, pass: login.password },
      authMethod: "PLAIN",
      tls: { rejectUnauthorized: false },
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 60_000,
    });
    try {
      const info = await transport.sendMail({
        envelope: { from: "app@origin.test", to: [`user${n}@dest.test`] },
        raw: message2k(n, "submission kv calls", "skc"),
      });
      assert.match(info.response, /^250 /);
    } finally {
      transport.close();
    }
  }
}

type Table = Record<string, KvCount>;

function perMessage(after: Table, before: Table, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, a] of Object.entries(after)) {
    const calls = (a.calls - (before[k]?.calls ?? 0)) / n;
    if (calls > 0) out[k] = calls;
  }
  return out;
}

const readsOf = (table: Record<string, number>, family: RegExp) =>
  Object.entries(table)
    .filter(([k]) => /^(get|getMany\(\d+\)|list) /.test(k) && family.test(k.split(" ")[1]!))
    .reduce((n, [, calls]) => n + calls, 0);

Deno.test("a STARTTLS + AUTH PLAIN submission reads the store once for the login and once for the transaction's scope", async () => {
  const { sink, relay, countFile, stop } = await startCountingRelay({
    POSTERN_TRUSTED_NETWORKS: "",
  });
  try {
    const login = await createCredential(relay, "app");
    const send = (first: number, count: number) => sendSession(relay, login, first, count);
    // The first login derives the password (then remembered); start-up reads settle too.
    await relayBatch(relay, sink, { first: 0, sessions: 2, per: 5 }, send);
    const before = await kvCounts(relay, countFile);
    const n = SESSIONS * PER_SESSION;
    await relayBatch(relay, sink, { first: 10, sessions: SESSIONS, per: PER_SESSION }, send);
    const after = await kvCounts(relay, countFile);
    const table = perMessage(after.byOp, before.byOp, n);
    console.log(
      `KV calls per message (${n} submissions):\n` +
        Object.entries(table).sort((x, y) => y[1] - x[1])
          .map(([k, v]) => `  ${v.toFixed(3).padStart(8)} ${k}`).join("\n"),
    );
    // The login: its lockouts first, the credential and failure counts in the same read.
    const login_ = readsOf(table, /^auth_lock$/);
    assert.ok(login_ >= 0.99 && login_ <= 1.01, `${login_.toFixed(2)} lockout reads per login`);
    // No second read of the credential, nor of the failure counts after a success. (Test
    // mode's own `get` of the credential, cached for a second, is per second, not per login.)
    const apart = Object.entries(table)
      .filter(([k]) => /^getMany\(\d+\) (cred|cred_user|win)$/.test(k))
      .reduce((n, [, calls]) => n + calls, 0);
    assert.ok(apart <= 0.01, `${apart.toFixed(2)} credential or failure-count reads apart`);
    // With the scope at MAIL FROM and the site actor's polls (~0.1, more on a slow machine).
    const all = readsOf(table, /./);
    assert.ok(all <= 3, `${all.toFixed(2)} KV reads per submitted message`);
  } finally {
    await stop();
  }
});
