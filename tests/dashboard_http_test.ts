/**
 * The dashboard over plain HTTP, without a browser: its session cookie and sign-out, the
 * lockout its sign-in shares with the API, allowed_ips, and the server-time budget of every page
 * with 10 000 messages in the log (read from the Server-Timing header each page sends).
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { call, newAccount, newCredential } from "./support/tenants.ts";
import { keys } from "../core/store/keys.ts";
import { newId } from "../core/ids.ts";
import type { MessageRecord, RecipientRow } from "../core/model.ts";
import { putMessageIndex, recipientIndexEntries } from "../core/store/message_index.ts";
import { putEvent } from "../core/store/events.ts";
import { StatTally } from "../core/store/stats.ts";

const origin = (relay: Relay) => `http://127.0.0.1:${relay.httpPort}`;

/** A form post as a same-origin page would send it. */
function post(relay: Relay, path: string, fields: Record<string, string>, cookie = "") {
  return fetch(`${origin(relay)}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: {
      origin: origin(relay),
      "content-type": "application/x-www-form-urlencoded",
      ...(cookie ? { cookie } : {}),
    },
    body: new URLSearchParams(fields),
  });
}

async function signIn(relay: Relay, token: string): Promise<{ res: Response; cookie: string }> {
  const res = await post(relay, "/dashboard/sign-in", { token });
  await res.body?.cancel();
  const cookie = /postern_session=[^;]*/.exec(res.headers.get("set-cookie") ?? "")?.[0] ?? "";
  return { res, cookie };
}

function get(relay: Relay, path: string, cookie: string) {
  return fetch(`${origin(relay)}/dashboard${path}`, { headers: { cookie }, redirect: "manual" });
}

Deno.test("the dashboard session cookie is HttpOnly and SameSite=Strict, and signing out ends the session", async () => {
  await using relay = await startRelay();
  const root = await fetch(`${origin(relay)}/`, { redirect: "manual" });
  await root.body?.cancel();
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/dashboard", "`/` leads to the dashboard");

  const { res, cookie } = await signIn(relay, relay.adminToken);
  assert.equal(res.status, 303);
  const setCookie = res.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\/dashboard/);
  assert.doesNotMatch(setCookie, /Secure/, "plain HTTP: a Secure cookie would never come back");
  assert.ok(!setCookie.includes(relay.adminToken), "the cookie is not the token");

  const page = await get(relay, "", cookie);
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
  assert.ok(!html.includes(relay.adminToken));
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrf, "every form carries the session's token");

  // A form without the session's token is refused even from the dashboard's own origin.
  const forged = await post(relay, "/dashboard/suppressions", { address: "x@dest.test" }, cookie);
  assert.equal(forged.status, 403);
  await forged.body?.cancel();
  const added = await post(
    relay,
    "/dashboard/suppressions",
    { address: "x@dest.test", _csrf: csrf },
    cookie,
  );
  await added.body?.cancel();
  assert.equal(added.status, 303);
  assert.equal((await call(relay, "/v1/suppressions/x%40dest.test")).status, 200);

  // Signing in again from the same browser replaces its session rather than adding one.
  const again = await post(relay, "/dashboard/sign-in", { token: relay.adminToken }, cookie);
  await again.body?.cancel();
  const renewed = /postern_session=[^;]*/.exec(again.headers.get("set-cookie") ?? "")![0];
  assert.notEqual(renewed, cookie);
  const stale = await get(relay, "", cookie);
  await stale.body?.cancel();
  assert.equal(stale.status, 303, "the replaced session is gone");
  const fresh = await (await get(relay, "", renewed)).text();
  const freshCsrf = /name="_csrf" value="([^"]+)"/.exec(fresh)![1]!;
  assert.notEqual(freshCsrf, csrf, "a new session, a new form token");

  const out = await post(relay, "/dashboard/sign-out", { _csrf: freshCsrf }, renewed);
  await out.body?.cancel();
  assert.equal(out.status, 303);
  assert.match(out.headers.get("set-cookie") ?? "", /postern_session=;/);
  const replayed = await get(relay, "", renewed);
  await replayed.body?.cancel();
  assert.equal(replayed.status, 303, "the old cookie no longer opens a page");
  assert.match(replayed.headers.get("location") ?? "", /\/dashboard\/sign-in/);
});

Deno.test("failed dashboard sign-ins count toward the HTTP lockout shared with the API", async () => {
  await using relay = await startRelay({
    env: { POSTERN_AUTH_FAILURE_LIMIT: "3", POSTERN_AUTH_LOCKOUT: "10m" },
  });
  const wrong = `pst_${"a".repeat(16)}_${"b".repeat(32)}`;
  for (let i = 0; i < 3; i++) {
    const { res } = await signIn(relay, wrong);
    assert.equal(res.status, 401, `attempt ${i + 1}`);
  }
  const { res, cookie } = await signIn(relay, relay.adminToken);
  assert.equal(res.status, 429, "locked out, even with the right token");
  assert.equal(cookie, "");
  const api = await call(relay, "/v1/credentials");
  assert.equal(api.status, 429, "the API's lock is the same one");
});

Deno.test("an API key whose allowed_ips exclude the browser cannot sign in, and a revoked key's session ends", async () => {
  await using relay = await startRelay();
  const fenced = await newCredential(relay, { name: "fenced", allowed_ips: ["10.0.0.0/8"] });
  const refused = await signIn(relay, fenced.password);
  assert.equal(refused.res.status, 403);
  assert.equal(refused.cookie, "");

  const open = await newCredential(relay, { name: "open" });
  const { cookie } = await signIn(relay, open.password);
  const before = await get(relay, "/activity", cookie);
  await before.body?.cancel();
  assert.equal(before.status, 200);
  const revoked = await call(relay, `/v1/credentials/${open.id}`, { method: "DELETE" });
  assert.equal(revoked.status, 200, revoked.text);
  const after = await get(relay, "/activity", cookie);
  await after.body?.cancel();
  assert.equal(after.status, 303, "the session went with the key");
});

Deno.test("the admin switches the dashboard to another account and sees that account's log only", async () => {
  await using relay = await startRelay({ env: { POSTERN_ROUTES: "*=127.0.0.1:9" } });
  // acme.test is never verified here: the account sends as it all the same.
  const acme = await newAccount(relay, "acme", { require_verified_sender: false });
  const key = await newCredential(relay, { name: "acme app" }, acme);
  const sent = await call(relay, "/v1/messages", {
    token: key.password,
    body: { from: "app@acme.test", to: "buyer@dest.test", subject: "Acme invoice", text: "hi" },
  });
  assert.equal(sent.status, 202, sent.text);

  const { cookie } = await signIn(relay, relay.adminToken);
  const before = await (await get(relay, "/activity", cookie)).text();
  assert.ok(!before.includes("Acme invoice"), "the default account's log");
  assert.match(before, /<option value="[^"]+" selected="">default<\/option>/);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(before)![1]!;
  const bad = await post(relay, "/dashboard/account", { account: "nope", _csrf: csrf }, cookie);
  await bad.body?.cancel();
  assert.equal(bad.status, 404);
  const switched = await post(relay, "/dashboard/account", { account: acme, _csrf: csrf }, cookie);
  await switched.body?.cancel();
  assert.equal(switched.status, 303);
  const after = await (await get(relay, "/activity", cookie)).text();
  assert.match(after, /Acme invoice/);
  assert.match(after, /selected="">acme<\/option>/);
  // The search form has every filter of the API, each with its label.
  for (const field of ["recipient", "from", "subject", "status", "tag", "credential"]) {
    assert.match(after, new RegExp(`<label for="f-${field}">[^<]+</label>`), field);
    assert.match(after, new RegExp(`id="f-${field}" name="${field}"`), field);
  }
  assert.match(after, new RegExp(`<option value="${key.id}">acme app \\(${key.id}\\)</option>`));
  const found = await (await get(relay, `/activity?subject=INVOICE&credential=${key.id}`, cookie))
    .text();
  assert.match(found, /Acme invoice/);
  assert.match(found, new RegExp(`<option value="${key.id}" selected="">`));
  const missed = await (await get(relay, "/activity?subject=receipt", cookie)).text();
  assert.ok(!missed.includes("Acme invoice"), "the subject filter reaches the API");
});

/** Writes `count` delivered or bounced messages over the last day straight into the store. */
async function seedLog(path: string, count: number, now: number): Promise<string[]> {
  const kv = await Deno.openKv(path);
  const ids: string[] = [];
  try {
    for (let i = 0; i < count; i += 50) {
      const op = kv.atomic();
      const tally = new StatTally();
      for (let j = i; j < Math.min(count, i + 50); j++) {
        const at = now - 23 * 3_600_000 + Math.floor(j * (23 * 3_600_000) / count);
        const id = newId(at);
        ids.push(id);
        const rcpt = `user${j}@dest${j % 20}.test`;
        const bounced = j % 20 === 3;
        const outcome = bounced ? "bounced" as const : "delivered" as const;
        const msg: MessageRecord = {
          id,
          account: "default",
          mailFrom: `app${j % 5}@origin.test`,
          size: 900,
          chunks: 0,
          recipients: 1,
          createdAt: at,
          credentialId: null,
          clientAddress: "127.0.0.1",
          via: "smtp",
          messageId: `<${id}@origin.test>`,
          subject: `Order ${j} confirmed`,
          tags: [j % 2 ? "receipt" : "welcome"],
        };
        const row: RecipientRow = {
          msgId: id,
          idx: 0,
          rcpt,
          domain: rcpt.split("@")[1]!,
          status: outcome,
          attempts: 1,
          queuedAt: at,
          nextAttemptAt: null,
          lastReply: bounced ? "550 5.1.1 no such user" : "250 2.0.0 OK",
          updatedAt: at + 1500,
        };
        op.set(keys.message(id), msg).set(keys.recipient(id, 0), row);
        putMessageIndex(op, msg);
        for (const [key, value] of recipientIndexEntries(msg, [row])) op.set(key, value);
        putEvent(op, "default", { id: newId(at), msgId: id, type: "accepted", at });
        putEvent(op, "default", {
          id: newId(at + 1500),
          msgId: id,
          type: outcome,
          at: at + 1500,
          rcpt,
          reply: row.lastReply!,
          remoteHost: "127.0.0.1:25",
        });
        tally.add("default", "accepted", at, { tags: msg.tags! });
        tally.add("default", outcome, at + 1500, {
          domain: row.domain,
          tags: msg.tags!,
          ...(bounced ? {} : { latencyMs: 1500 }),
        });
      }
      tally.apply(op);
      const res = await op.commit();
      assert.ok(res.ok, "seed commit");
    }
  } finally {
    kv.close();
  }
  return ids;
}

function serverMs(res: Response): number {
  const m = /app;dur=([\d.]+)/.exec(res.headers.get("server-timing") ?? "");
  assert.ok(m, "every page says its server time");
  return Number(m[1]);
}

Deno.test("every dashboard page is served within 300 ms of server time with 10 000 messages in the log", async () => {
  const sink = await startSink();
  const dataDir = await Deno.makeTempDir({ prefix: "postern_dash_budget_" });
  try {
    const ids = await seedLog(`${dataDir}/postern.kv`, 10_000, Date.now());
    await using relay = await startRelay({
      dataDir,
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
        POSTERN_POLL_INTERVAL: "200ms",
        POSTERN_RETRY_SCHEDULE: "1h",
      },
    });
    await submit(relay, [{ from: "app@origin.test", to: "late@dest.test", tag: "fresh" }]);
    await sink.waitFor(1);
    const search = await call(relay, "/v1/messages?limit=50");
    assert.equal(search.status, 200);
    const { cookie } = await signIn(relay, relay.adminToken);
    const pages = [
      "",
      "/activity",
      `/activity?cursor=${search.json.next_cursor}`,
      "/activity?recipient=user4321%40dest1.test",
      "/activity?from=app3%40origin.test&tag=receipt",
      "/activity?status=bounced",
      "/activity?subject=ORDER%20999",
      `/messages/${ids[5_000]}`,
      "/queue",
      "/credentials",
      "/domains",
      "/webhooks",
      "/suppressions",
    ];
    const report: string[] = [];
    for (const path of pages) {
      const times: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await get(relay, path, cookie);
        const html = await res.text();
        assert.equal(res.status, 200, `${path}: ${html.slice(0, 300)}`);
        if (i > 0) times.push(serverMs(res)); // the first request warms caches
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)]!;
      report.push(`${path || "/"}: median ${median} ms, max ${times.at(-1)} ms`);
      assert.ok(median < 300, `${path || "/"} took ${median} ms of server time (${times})`);
    }
    console.log(`dashboard server time, 10 000 messages:\n  ${report.join("\n  ")}`);
    const message = await (await get(relay, `/messages/${ids[5_000]}`, cookie)).text();
    assert.match(message, /Order 5000 confirmed/);
    const activity = await (await get(relay, "/activity?status=bounced", cookie)).text();
    assert.match(activity, /Order \d+ confirmed/, "the seeded log is what the pages read");
  } finally {
    await sink.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
