/**
 * Tenant security end to end, each point as a hostile tenant would try it against the running
 * relay (real clients: nodemailer, swaks, raw SMTP sessions, HTTP through fetch): nobody sends as
 * another account's domain, one From is checked address by address, a key's allowed_ips hold
 * for reads too, X-Postern-Pool chooses only among granted pools, daily_quota counts recipients,
 * receivers' verdicts written by the sender never leave, and UTF-8 addresses need SMTPUTF8.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import type { Relay } from "./support/relay_process.ts";
import type { ReceivedMessage, Sink } from "./support/sink.ts";
import { queueDrained, writeConfig } from "./support/relay_fixture.ts";
import { runCommand } from "./support/run_command.ts";
import {
  assertError,
  call,
  dkimSignatures,
  type Issued,
  mailauthVerify,
  message,
  newAccount,
  newCredential,
  send,
  session,
  startTenantRelay,
  type TenantEnv,
  verifiedDomain,
} from "./support/tenants.ts";

const encoder = new TextEncoder();

/** A relay, its DNS and sink (tests/support/tenants.ts), with IP pools when `config` has them. */
async function start(config?: unknown): Promise<TenantEnv> {
  return await startTenantRelay({
    POSTERN_POLL_INTERVAL: "200ms",
    ...(config ? { POSTERN_CONFIG: await writeConfig(config) } : {}),
  });
}

/** nodemailer over STARTTLS with the credential, as an app would send. */
function transport(relay: Relay, key: Issued) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port: relay.smtpPort,
    secure: false,
    requireTLS: true,
    name: "app.client.test",
    tls: { rejectUnauthorized: false },
    auth: { user: key.username, pass: key.password },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
  });
}

/** One transaction of `data` on a fresh authenticated session; the final reply. */
async function submitRaw(relay: Relay, key: Issued, mailFrom: string, data: string) {
  const client = await session(relay, key);
  try {
    return await send(client, mailFrom, encoder.encode(data));
  } finally {
    await client.quit();
  }
}

/** A raw MIME upload over HTTP (`message/rfc822`), the envelope in the query. */
async function sendRaw(relay: Relay, token: string, mailFrom: string, data: string) {
  const res = await fetch(
    `http://127.0.0.1:${relay.httpPort}/v1/messages?from=${mailFrom}&to=victim@dest.test`,
    {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "message/rfc822" },
      body: data,
    },
  );
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, text };
}

function subjectOf(m: ReceivedMessage): string {
  return /^Subject: (.*)$/m.exec(m.headers)?.[1] ?? "";
}

/** Subjects the sink received, in order. */
function subjects(sink: Sink): string[] {
  return sink.messages.map(subjectOf);
}

const ceoMail = (extra: Record<string, unknown> = {}) => ({
  from: { name: "CEO", address: "ceo@b.test" },
  to: "victim@dest.test",
  subject: "wire",
  text: "Pay the invoice today.",
  ...extra,
});

Deno.test("another account's domain is refused as MAIL FROM, From or Sender, subdomains included: 550 5.7.1 over SMTP, 403 over HTTP", async () => {
  await using env = await start();
  const { relay, sink } = env;
  const a = await newAccount(relay, "tenant-a");
  const b = await newAccount(relay, "tenant-b");
  await verifiedDomain(relay, env.dns.zone, "a.test", { account: a });
  await verifiedDomain(relay, env.dns.zone, "b.test", { account: b });
  // Scopes left at their defaults: any sender domain as far as the credential is concerned.
  const keyA = await newCredential(relay, { name: "a-app" }, a);
  // The default account does not require verified senders, but B's domain is still B's.
  const keyDefault = await newCredential(relay, { name: "default-app" });

  for (const key of [keyA, keyDefault]) {
    const mailer = transport(relay, key);
    try {
      await assert.rejects(
        mailer.sendMail({
          from: "CEO <ceo@b.test>",
          to: "victim@dest.test",
          subject: "wire",
          text: "Pay.",
        }),
        (err: { responseCode?: number; response?: string }) => {
          assert.equal(err.responseCode, 550, String(err.response));
          assert.match(err.response ?? "", /5\.7\.1 .*b\.test belongs to another account/);
          return true;
        },
      );
    } finally {
      mailer.close();
    }
  }

  // An IDN of B's, added (not even verified): the same name in A-labels or in Unicode.
  const idn = await call(relay, "/v1/domains", {
    body: { name: "xn--bcher-kva.test" },
    account: b,
  });
  assert.equal(idn.status, 201, idn.text);

  const client = await session(relay, keyA);
  for (
    const mailFrom of [
      "ceo@b.test",
      "CEO@B.TEST",
      "bounce@mail.b.test",
      "x@deep.sub.b.test",
      "ceo@xn--bcher-kva.test",
    ]
  ) {
    const reply = await client.command(`MAIL FROM:<${mailFrom}>`);
    assert.match(reply.raw, /^550 5\.7\.1 /, `MAIL FROM:<${mailFrom}>`);
  }
  const unicode = await client.command("MAIL FROM:<ceo@bücher.test> SMTPUTF8");
  assert.match(unicode.raw, /^550 5\.7\.1 /);
  await client.command("RSET");
  const headerAttacks = [
    { from: "CEO <ceo@b.test>" },
    { from: "Newsletter <news@lists.b.test>" },
    { from: "x@a.test", headers: ["Sender: ceo@b.test"] },
    { from: "Kasse <kasse@bücher.test>" },
  ];
  for (const attack of headerAttacks) {
    const reply = await send(client, "x@a.test", message({ ...attack, subject: "wire" }));
    assert.match(reply.raw, /^550 5\.7\.1 /, JSON.stringify(attack));
  }
  const own = await send(client, "x@a.test", message({ from: "x@a.test", subject: "own" }));
  assert.equal(own.code, 250, own.raw);
  await client.quit();

  // HTTP: a key of A, the admin token acting for A, a key of the default account.
  assertError(
    await call(relay, "/v1/messages", { token: keyA.password, body: ceoMail() }),
    403,
    "forbidden",
  );
  assertError(await call(relay, "/v1/messages", { account: a, body: ceoMail() }), 403, "forbidden");
  assertError(
    await call(relay, "/v1/messages", { token: keyDefault.password, body: ceoMail() }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, "/v1/messages", {
      token: keyA.password,
      body: ceoMail({ from: "ceo@billing.b.test" }),
    }),
    403,
    "forbidden",
  );
  const ownHttp = await call(relay, "/v1/messages", {
    token: keyA.password,
    body: ceoMail({ from: "x@a.test", subject: "own http" }),
  });
  assert.equal(ownHttp.status, 202, ownHttp.text);
  const raw = await sendRaw(
    relay,
    keyA.password,
    "x@a.test",
    "From: CEO <ceo@b.test>\r\nTo: victim@dest.test\r\nSubject: wire\r\n\r\nPay.\r\n",
  );
  assert.equal(raw.status, 403, raw.text);

  // Only A's own mail left, signed by A.
  await sink.waitFor(2);
  await queueDrained(relay);
  assert.deepEqual(subjects(sink).sort(), ["own", "own http"]);
  for (const m of sink.messages) {
    assert.doesNotMatch(m.headers, /b\.test/i);
    assert.deepEqual(dkimSignatures(m.headers).map((s) => s.get("d")), ["a.test"]);
  }
});

Deno.test("an account made through the API sends only as its verified domains until require_verified_sender is turned off", async () => {
  await using env = await start();
  const { relay, sink } = env;
  const created = await call(relay, "/v1/accounts", { body: { name: "shop" } });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.json.require_verified_sender, true);
  const shop = created.json.id;
  // The default account keeps the old behaviour, as documented.
  const fallback = await call(relay, "/v1/accounts/default");
  assert.equal(fallback.json.require_verified_sender, false, fallback.text);

  await verifiedDomain(relay, env.dns.zone, "shop.test", { account: shop });
  const pending = await call(relay, "/v1/domains", {
    body: { name: "pending.test" },
    account: shop,
  });
  assert.equal(pending.status, 201, pending.text);
  const key = await newCredential(relay, { name: "shop-app" }, shop);

  const client = await session(relay, key);
  for (const mailFrom of ["x@pending.test", "x@nobody-added.test"]) {
    const reply = await client.command(`MAIL FROM:<${mailFrom}>`);
    assert.match(reply.raw, /^550 5\.7\.1 .*not a verified domain of this account/, mailFrom);
  }
  await client.command("RSET");
  const unverifiedFrom = await send(
    client,
    "x@shop.test",
    message({ from: "x@pending.test", subject: "pending" }),
  );
  assert.match(unverifiedFrom.raw, /^550 5\.7\.1 /);
  const verified = await send(
    client,
    "bounce@mail.shop.test",
    message({ from: "Shop <x@shop.test>", subject: "verified" }),
  );
  assert.equal(verified.code, 250, verified.raw);
  await client.quit();
  assertError(
    await call(relay, "/v1/messages", {
      token: key.password,
      body: { from: "x@nobody-added.test", to: "u@dest.test", subject: "s", text: "t" },
    }),
    403,
    "forbidden",
  );

  // Settable through the accounts API, by the admin only.
  assertError(
    await call(relay, `/v1/accounts/${shop}`, {
      method: "PATCH",
      body: { require_verified_sender: false },
      token: key.password,
    }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, `/v1/accounts/${shop}`, {
      method: "PATCH",
      body: { require_verified_sender: "no" },
    }),
    400,
    "invalid_request",
  );
  assertError(
    await call(relay, "/v1/accounts/acc_nosuchaccount0", {
      method: "PATCH",
      body: { require_verified_sender: false },
    }),
    404,
    "not_found",
  );
  const off = await call(relay, `/v1/accounts/${shop}`, {
    method: "PATCH",
    body: { require_verified_sender: false },
  });
  assert.equal(off.status, 200, off.text);
  assert.equal(off.json.require_verified_sender, false);
  const after = await submitRaw(
    relay,
    key,
    "x@nobody-added.test",
    "From: x@nobody-added.test\r\nTo: u@dest.test\r\nSubject: unrestricted\r\n\r\nhi\r\n",
  );
  assert.equal(after.code, 250, after.raw);

  await sink.waitFor(2);
  await queueDrained(relay);
  assert.deepEqual(subjects(sink).sort(), ["unrestricted", "verified"]);
});

Deno.test("more than one From or Sender is refused with 550 5.6.0, and every address in From and Sender is checked", async () => {
  await using env = await start();
  const { relay, sink } = env;
  const key = await newCredential(relay, { name: "scoped", domains: ["a.test"] });
  const body = "To: victim@dest.test\r\nSubject: attack\r\n\r\nPay.\r\n";
  const cases: [string, RegExp][] = [
    ["From: x@a.test\r\nFrom: ceo@b.test\r\n", /^550 5\.6\.0 /],
    ["From: x@a.test\r\nFrom: y@a.test\r\n", /^550 5\.6\.0 /],
    ["From: x@a.test\r\nSender: s@a.test\r\nSender: ceo@b.test\r\n", /^550 5\.6\.0 /],
    ["From: <x@a.test> <ceo@b.test>\r\n", /^550 5\.7\.1 /],
    ["From: x@a.test ceo@b.test\r\n", /^550 5\.7\.1 /],
    ["From: x@a.test,\r\n ceo@b.test\r\n", /^550 5\.7\.1 /],
    ['From: "Accounts"\r\n\t<ceo@b.test>\r\n', /^550 5\.7\.1 /],
    ["From: Board: x@a.test, ceo@b.test;\r\n", /^550 5\.7\.1 /],
    ['From: "ceo@b.test" <x@a.test>\r\n', /^550 5\.7\.1 /],
    ["From: x@a.test (ceo@b.test)\r\n", /^550 5\.7\.1 /],
    ["From: =?utf-8?q?ceo=40b.test?= <x@a.test>\r\n", /^550 5\.7\.1 /],
    ["From: x@a.test\r\nSender: ceo@b.test\r\n", /^550 5\.7\.1 /],
    ["From: <ceo@b.test@a.test>\r\n", /^550 5\.7\.1 /],
  ];
  const client = await session(relay, key);
  for (const [head, expected] of cases) {
    const reply = await send(client, "x@a.test", encoder.encode(head + body));
    assert.match(reply.raw, expected, JSON.stringify(head));
  }
  // The null sender names no domain; its From is checked all the same.
  const nullForeign = await send(client, "", encoder.encode("From: ceo@b.test\r\n" + body));
  assert.match(nullForeign.raw, /^550 5\.7\.1 /);
  const nullOwn = await send(
    client,
    "",
    encoder.encode("From: x@a.test\r\nTo: victim@dest.test\r\nSubject: null sender\r\n\r\nhi\r\n"),
  );
  assert.equal(nullOwn.code, 250, nullOwn.raw);
  await client.quit();

  // swaks, with a whole message of its own.
  const dir = await Deno.makeTempDir({ prefix: "postern_swaks_" });
  try {
    await Deno.writeTextFile(
      `${dir}/two-from.eml`,
      "From: x@a.test\r\nFrom: ceo@b.test\r\nTo: victim@dest.test\r\nSubject: two\r\n\r\nPay.\r\n",
    );
    const swaks = await runCommand("swaks", [
      ...["--server", "127.0.0.1", "--port", String(relay.smtpPort), "--tls"],
      ...["--auth", "PLAIN", "--auth-user", key.username, "--auth-password", key.password],
      ...["--from", "x@a.test", "--to", "victim@dest.test"],
      ...["--data", `${dir}/two-from.eml`, "--timeout", "20"],
    ]);
    assert.notEqual(swaks.code, 0, swaks.stdout);
    assert.match(swaks.stdout, /550 5\.6\.0 Message has more than one From/, swaks.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  // HTTP takes the same check: raw uploads and JSON alike.
  const twoFrom = await sendRaw(
    relay,
    key.password,
    "x@a.test",
    "From: x@a.test\r\nFrom: ceo@b.test\r\n" + body,
  );
  assert.equal(twoFrom.status, 400, twoFrom.text);
  assert.match(twoFrom.json.error.message, /more than one From/);
  const twoAddresses = await sendRaw(
    relay,
    key.password,
    "x@a.test",
    "From: <x@a.test> <ceo@b.test>\r\n" + body,
  );
  assert.equal(twoAddresses.status, 403, twoAddresses.text);
  assertError(
    await call(relay, "/v1/messages", {
      token: key.password,
      body: { from: "x@a.test", to: "v@dest.test", subject: "s", text: "t" },
    }).then((ok) => {
      assert.equal(ok.status, 202, ok.text);
      return call(relay, "/v1/messages", { token: key.password, body: ceoMail() });
    }),
    403,
    "forbidden",
  );

  await sink.waitFor(2);
  await queueDrained(relay);
  assert.deepEqual(subjects(sink).sort(), ["null sender", "s"]);
});

Deno.test("allowed_ips holds for every HTTP request made with the key, reads included", async () => {
  await using env = await start();
  const { relay } = env;
  const fenced = await newCredential(relay, { name: "fenced", allowed_ips: ["10.0.0.0/8"] });
  const home = await newCredential(relay, { name: "home", allowed_ips: ["127.0.0.1/32"] });
  const requests: [string, Parameters<typeof call>[2]][] = [
    ["/v1/credentials", {}],
    [`/v1/credentials/${fenced.id}`, {}],
    ["/v1/domains", {}],
    ["/v1/messages", {}],
    ["/v1/events", {}],
    ["/v1/stats", {}],
    ["/v1/suppressions", {}],
    ["/v1/webhooks", {}],
    ["/v1/messages", { body: { from: "a@a.test", to: "v@dest.test", subject: "s", text: "t" } }],
    ["/v1/suppressions", { body: { address: "someone@dest.test" } }],
  ];
  for (const [path, init] of requests) {
    const refused = await call(relay, path, { ...init, token: fenced.password });
    assertError(refused, 403, "forbidden");
    assert.match(refused.json.error.message, /from 127\.0\.0\.1/);
    // At home the key is heard (an admin-only write is still refused, for that reason).
    const allowed = await call(relay, path, { ...init, token: home.password });
    assert.notEqual(allowed.status, 401, allowed.text);
    assert.doesNotMatch(allowed.text, /using this credential from/, `${path} at home`);
  }
});

Deno.test("X-Postern-Pool chooses only among the pools granted to the credential or its account: 550 5.7.1 / 403 otherwise", async () => {
  const source = (address: string, ehlo: string) => ({ sources: [{ address, ehlo }] });
  await using env = await start({
    pools: {
      default: source("127.0.0.2", "a.relay.test"),
      warm: source("127.0.0.3", "b.relay.test"),
      bulk: source("127.0.0.4", "c.relay.test"),
      vip: source("127.0.0.5", "d.relay.test"),
    },
  });
  const { relay, sink } = env;
  const key = await newCredential(relay, { name: "pooled", pool: "warm", pools: ["bulk"] });
  const view = await call(relay, `/v1/credentials/${key.id}`);
  assert.deepEqual([view.json.pool, view.json.pools], ["warm", ["bulk"]]);

  const client = await session(relay, key);
  const pooled = (pool: string) =>
    send(
      client,
      "app@origin.test",
      message({ from: "app@origin.test", subject: pool, headers: [`X-Postern-Pool: ${pool}`] }),
    );
  for (const pool of ["vip", "default", "nosuchpool"]) {
    assert.match((await pooled(pool)).raw, /^550 5\.7\.1 Pool .* not allowed/, pool);
  }
  for (const pool of ["warm", "bulk"]) assert.equal((await pooled(pool)).code, 250, pool);
  await client.quit();

  const httpSend = (pool: string) =>
    call(relay, "/v1/messages", {
      token: key.password,
      body: {
        from: "app@origin.test",
        to: "u@dest.test",
        subject: `http ${pool}`,
        text: "x",
        headers: { "X-Postern-Pool": pool },
      },
    });
  assertError(await httpSend("vip"), 403, "forbidden");
  // Granted to the account, it is granted to each of its credentials.
  const granted = await call(relay, "/v1/accounts/default", {
    method: "PATCH",
    body: { pools: ["vip"] },
  });
  assert.equal(granted.status, 200, granted.text);
  assert.deepEqual(granted.json.pools, ["vip"]);
  assert.equal((await httpSend("vip")).status, 202);

  const got = await sink.waitFor(3, { timeoutMs: 30_000 });
  await queueDrained(relay);
  const from = Object.fromEntries(got.map((m) => [subjectOf(m), m]));
  assert.deepEqual(Object.keys(from).sort(), ["bulk", "http vip", "warm"]);
  assert.equal(from["warm"]!.remoteAddress, "127.0.0.3");
  assert.equal(from["bulk"]!.remoteAddress, "127.0.0.4");
  assert.equal(from["http vip"]!.remoteAddress, "127.0.0.5");
});

Deno.test("daily_quota counts recipients: a quota of 1 lets one message reach one recipient, not a thousand", async () => {
  await using env = await start();
  const { relay, sink } = env;
  const one = await newCredential(relay, { name: "one", daily_quota: 1 });
  const recipients = Array.from({ length: 1000 }, (_, i) => `victim${i}@dest.test`);

  const mailer = transport(relay, one);
  try {
    const info = await mailer.sendMail({
      from: "app@origin.test",
      to: recipients,
      subject: "blast",
      text: "Spam.",
    });
    assert.deepEqual(info.accepted, ["victim0@dest.test"]);
    assert.equal(info.rejected.length, 999);
    // 452, as for too many recipients: the client may keep the rest for tomorrow.
    assert.match(String(info.rejectedErrors?.[0]?.response), /^452 4\.7\.0 /);
    // The day is spent: the next message is refused at MAIL FROM.
    await assert.rejects(
      mailer.sendMail({ from: "app@origin.test", to: "x@dest.test", subject: "more", text: "x" }),
      (err: { responseCode?: number }) => err.responseCode === 451,
    );
  } finally {
    mailer.close();
  }
  const [blast] = await sink.waitFor(1);
  assert.deepEqual(blast!.to, ["victim0@dest.test"]);

  // HTTP: all recipients are known at once, and must fit.
  const three = await newCredential(relay, { name: "three", daily_quota: 3 });
  const mail = (to: string[]) => ({ from: "app@origin.test", to, subject: "s", text: "t" });
  assertError(
    await call(relay, "/v1/messages", { token: three.password, body: mail(recipients) }),
    429,
    "rate_limited",
  );
  assertError(
    await call(relay, "/v1/messages", {
      token: three.password,
      body: mail(recipients.slice(0, 4)),
    }),
    429,
    "rate_limited",
  );
  const fits = await call(relay, "/v1/messages", {
    token: three.password,
    body: mail(recipients.slice(0, 3)),
  });
  assert.equal(fits.status, 202, fits.text);
  assertError(
    await call(relay, "/v1/messages", { token: three.password, body: mail(["last@dest.test"]) }),
    429,
    "rate_limited",
  );
});

Deno.test("Authentication-Results, ARC-* and Received-SPF written by the sender are removed before signing and sending", async () => {
  await using env = await start();
  const { relay, sink } = env;
  await verifiedDomain(relay, env.dns.zone, "a.test");
  const key = await newCredential(relay);
  const forged = [
    "Authentication-Results: mx.bank.test; dkim=pass header.d=bank.test;",
    "\tspf=pass smtp.mailfrom=bank.test; dmarc=pass",
    "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=bank.test; s=arc; b=AAAA",
    "ARC-Message-Signature: i=1; a=rsa-sha256; d=bank.test; s=arc; h=from; b=AAAA",
    "ARC-Authentication-Results: i=1; mx.bank.test; dkim=pass",
    "Received-SPF: pass (bank.test: 127.0.0.1 is authorized)",
  ];
  const reply = await submitRaw(
    relay,
    key,
    "x@a.test",
    new TextDecoder().decode(
      message({ from: "x@a.test", subject: "smtp verdicts", headers: forged }),
    ),
  );
  assert.equal(reply.code, 250, reply.raw);
  const http = await call(relay, "/v1/messages", {
    token: key.password,
    body: {
      from: "x@a.test",
      to: "user@dest.test",
      subject: "http verdicts",
      text: "hi",
      headers: {
        "Authentication-Results": "mx.bank.test; dkim=pass header.d=bank.test",
        "ARC-Seal": "i=1; a=rsa-sha256; cv=none; d=bank.test; s=arc; b=AAAA",
        "Received-SPF": "pass (bank.test)",
      },
    },
  });
  assert.equal(http.status, 202, http.text);

  const got = await sink.waitFor(2, { timeoutMs: 30_000 });
  for (const m of got) {
    assert.doesNotMatch(m.headers, /^(Authentication-Results|ARC-|Received-SPF)/im, m.headers);
    assert.doesNotMatch(m.headers, /bank\.test/);
    const signature = dkimSignatures(m.headers)[0]!;
    assert.doesNotMatch(signature.get("h")!, /authentication-results|arc-|received-spf/i);
    const verdict = await mailauthVerify(m.raw, env.dns.zone, "x@a.test");
    assert.deepEqual(verdict.dkim.map((d) => d.result), ["pass"]);
  }
});

Deno.test("a non-ASCII address without SMTPUTF8 is refused with 553 5.6.7 (RFC 6531)", async () => {
  await using env = await start();
  const { relay } = env;
  const key = await newCredential(relay);
  const client = await session(relay, key);
  for (const mailFrom of ["jösé@origin.test", "app@bücher.test"]) {
    const reply = await client.command(`MAIL FROM:<${mailFrom}>`);
    assert.match(reply.raw, /^553 5\.6\.7 /, mailFrom);
  }
  // An IDN written as A-labels is ASCII.
  assert.equal((await client.command("MAIL FROM:<app@xn--bcher-kva.test>")).code, 250);
  const rcpt = await client.command("RCPT TO:<müller@dest.test>");
  assert.match(rcpt.raw, /^553 5\.6\.7 /);
  await client.command("RSET");
  // With SMTPUTF8 the same addresses are taken.
  assert.equal((await client.command("MAIL FROM:<jösé@origin.test> SMTPUTF8")).code, 250);
  assert.equal((await client.command("RCPT TO:<müller@dest.test>")).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
  await client.write(
    encoder.encode(
      "From: jösé@origin.test\r\nTo: müller@dest.test\r\nSubject: utf8\r\n\r\nhi\r\n.\r\n",
    ),
  );
  assert.equal((await client.reply()).code, 250);
  await client.quit();
});
