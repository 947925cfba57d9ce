/**
 * End to end: accounts (tenants) and credentials with their scopes, against the real relay
 * process. One account's key never reads another's credentials, domains or messages; a
 * credential's secret is an SMTP password and an HTTP key at once, rotates without a gap, and
 * carries the limits SMTP enforces (allowed_ips, sender domains, rate_limit, daily_quota).
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { queuedId } from "./support/relay_api.ts";
import {
  assertError,
  call,
  login,
  message,
  newAccount,
  newCredential,
  send,
  session,
} from "./support/tenants.ts";
import { getCredential } from "../core/store/credentials.ts";
import { queueDrained } from "./support/relay_fixture.ts";

/** A sink, and a relay that routes every domain to it. */
async function relayAndSink(env: Record<string, string> = {}) {
  const sink: Sink = await startSink();
  let relay: Relay;
  try {
    relay = await startRelay({ env: { POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`, ...env } });
  } catch (error) {
    await sink.close();
    throw error;
  }
  return {
    relay,
    sink,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await sink.close();
    },
  };
}

Deno.test("POST /v1/accounts creates accounts that only the admin token manages", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const created = await call(relay, "/v1/accounts", { body: { name: "Acme Corp" } });
  assert.equal(created.status, 201, created.text);
  assert.match(created.json.id, /^acc_[a-z0-9]{16}$/);
  assert.equal(created.json.name, "Acme Corp");

  const list = await call(relay, "/v1/accounts");
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.data.map((a: { id: string }) => a.id), ["default", created.json.id]);

  assertError(await call(relay, "/v1/accounts", { body: { name: "acme corp" } }), 409, "conflict");
  assertError(await call(relay, "/v1/accounts", { body: { name: "" } }), 400, "invalid_request");
  assertError(await call(relay, "/v1/accounts", { body: { name: 7 } }), 400, "invalid_request");
  assertError(
    await call(relay, "/v1/accounts", { body: { name: "x", plan: "gold" } }),
    400,
    "invalid_request",
  );
  assertError(await call(relay, "/v1/accounts", { body: "{not json" }), 400, "invalid_request");

  // A credential key is no admin.
  const key = await newCredential(relay);
  assertError(await call(relay, "/v1/accounts", { token: key.password }), 403, "forbidden");
  assertError(
    await call(relay, "/v1/accounts", { body: { name: "mine" }, token: key.password }),
    403,
    "forbidden",
  );
  // The admin token names an account with X-Postern-Account; an unknown one is a 404.
  assertError(
    await call(relay, "/v1/credentials", { account: "acc_nosuchaccount0" }),
    404,
    "not_found",
  );
  const inAcme = await call(relay, "/v1/credentials", { account: created.json.id });
  assert.equal(inAcme.status, 200);
  assert.deepEqual(inAcme.json.data, []);
});

Deno.test("one account's key never reads or acts on another account's resources", async () => {
  await using env = await relayAndSink();
  const { relay, sink } = env;
  // alpha.test is never verified here: alpha sends as it all the same.
  const a = await newAccount(relay, "alpha", { require_verified_sender: false });
  const b = await newAccount(relay, "beta");
  const keyA = await newCredential(relay, { name: "alpha-app" }, a);
  const keyB = await newCredential(relay, { name: "beta-app" }, b);
  const domainA = await call(relay, "/v1/domains", { body: { name: "alpha.test" }, account: a });
  assert.equal(domainA.status, 201, domainA.text);

  // A message sent with A's credential belongs to A.
  const client = await session(relay, keyA);
  const reply = await send(client, "app@alpha.test", message({ from: "app@alpha.test" }));
  await client.quit();
  assert.equal(reply.code, 250, reply.raw);
  const msgId = queuedId(reply.raw);
  await sink.waitFor(1);

  // Credentials: each key lists only its own account's; another account's id is a 404.
  const listA = await call(relay, "/v1/credentials", { token: keyA.password });
  assert.deepEqual(listA.json.data.map((c: { id: string }) => c.id), [keyA.id]);
  const listB = await call(relay, "/v1/credentials", { token: keyB.password });
  assert.deepEqual(listB.json.data.map((c: { id: string }) => c.id), [keyB.id]);
  assertError(
    await call(relay, `/v1/credentials/${keyA.id}`, { token: keyB.password }),
    404,
    "not_found",
  );
  assert.equal(
    (await call(relay, `/v1/credentials/${keyA.id}`, { token: keyA.password })).status,
    200,
  );
  // The admin token sees an account's credentials only when it names that account.
  assertError(await call(relay, `/v1/credentials/${keyA.id}`), 404, "not_found");
  assert.equal((await call(relay, `/v1/credentials/${keyA.id}`, { account: a })).status, 200);

  // Domains.
  const domainsB = await call(relay, "/v1/domains", { token: keyB.password });
  assert.deepEqual(domainsB.json.data, []);
  const domainsA = await call(relay, "/v1/domains", { token: keyA.password });
  assert.deepEqual(domainsA.json.data.map((d: { name: string }) => d.name), ["alpha.test"]);
  assertError(
    await call(relay, `/v1/domains/${domainA.json.id}`, { token: keyB.password }),
    404,
    "not_found",
  );
  assertError(
    await call(relay, `/v1/domains/${domainA.json.id}/verify`, {
      method: "POST",
      token: keyB.password,
    }),
    404,
    "not_found",
  );

  // Messages.
  assert.equal((await call(relay, `/v1/messages/${msgId}`, { token: keyA.password })).status, 200);
  assertError(
    await call(relay, `/v1/messages/${msgId}`, { token: keyB.password }),
    404,
    "not_found",
  );
  assertError(await call(relay, `/v1/messages/${msgId}`), 404, "not_found");
  assert.equal((await call(relay, `/v1/messages/${msgId}`, { account: a })).status, 200);

  // A key cannot borrow another account with the header, nor manage credentials at all.
  assertError(
    await call(relay, "/v1/credentials", { token: keyB.password, account: a }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, "/v1/credentials", { body: { name: "x" }, token: keyA.password }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, `/v1/credentials/${keyA.id}`, { method: "DELETE", token: keyB.password }),
    403,
    "forbidden",
  );
  // ... and the admin acting on B cannot revoke A's credential either.
  assertError(
    await call(relay, `/v1/credentials/${keyA.id}`, { method: "DELETE", account: b }),
    404,
    "not_found",
  );
});

Deno.test("credential keys are pst_ secrets of 192 bits, stored only as scrypt hashes", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const res = await call(relay, "/v1/credentials", { body: { name: "wordpress" } });
  assert.equal(res.status, 201);
  const password: string = res.json.password;
  // pst_<credential id>_<24 random bytes, base64url>: 192 bits of entropy behind the prefix.
  assert.match(password, /^pst_[a-z0-9]{16}_[A-Za-z0-9_-]{32}$/);
  assert.equal(password.slice(4, 20), res.json.id.slice(3));
  // The defaults of every scope.
  assert.deepEqual(
    {
      domains: res.json.domains,
      allowed_ips: res.json.allowed_ips,
      rate_limit: res.json.rate_limit,
      daily_quota: res.json.daily_quota,
      pool: res.json.pool,
      dsn: res.json.dsn,
      last_used_at: res.json.last_used_at,
    },
    {
      domains: [],
      allowed_ips: [],
      rate_limit: null,
      daily_quota: null,
      pool: null,
      dsn: true,
      last_used_at: null,
    },
  );
  // Shown once: later reads carry no secret.
  const again = await call(relay, `/v1/credentials/${res.json.id}`);
  assert.ok(!again.text.includes(password));
  assert.equal(again.json.password, undefined);
  assert.ok(!again.text.includes("hash"));

  // The store holds an scrypt hash, never the secret.
  const kv = await Deno.openKv(`${relay.dataDir}/postern.kv`);
  try {
    const stored = await getCredential(kv, res.json.id);
    assert.ok(stored);
    assert.ok(!JSON.stringify(stored).includes(password));
    assert.ok(!JSON.stringify(stored).includes(password.slice(21)));
    assert.equal(stored.secrets[0]!.hash.algorithm, "scrypt");
    assert.ok(stored.secrets[0]!.hash.N >= 1 << 15);
  } finally {
    kv.close();
  }
  // Failed logins are logged, never with the secret.
  const { client, reply } = await login(relay, res.json.username, password + "x");
  await client.quit();
  assert.equal(reply.code, 535);
  const okLogin = await login(relay, res.json.username, password);
  await okLogin.client.quit();
  assert.equal(okLogin.reply.code, 235);
  const logs = JSON.stringify(relay.logs) + relay.stderr;
  assert.ok(!logs.includes(password.slice(21)), "a secret reached the logs");
});

Deno.test("one secret serves AUTH PLAIN, LOGIN, XOAUTH2 and HTTP, and last_used_at records use", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const key = await newCredential(relay);
  for (const mechanism of ["PLAIN", "LOGIN", "XOAUTH2"] as const) {
    const { client, reply } = await login(relay, key.username, key.password, mechanism);
    await client.quit();
    assert.equal(reply.code, 235, `${mechanism}: ${reply.raw}`);
  }
  const asKey = await call(relay, `/v1/credentials/${key.id}`, { token: key.password });
  assert.equal(asKey.status, 200, asKey.text);
  const lastUsed = Date.parse(asKey.json.last_used_at);
  assert.ok(Date.now() - lastUsed < 60_000, `last_used_at ${asKey.json.last_used_at}`);
  assertError(
    await call(relay, "/v1/credentials", { token: key.password + "x" }),
    401,
    "unauthorized",
  );
});

Deno.test("rotation issues a second secret; the first works until it is revoked", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const key = await newCredential(relay);
  const rotated = await call(relay, `/v1/credentials/${key.id}/rotate`, { method: "POST" });
  assert.equal(rotated.status, 201, rotated.text);
  const second: string = rotated.json.password;
  assert.match(second, /^pst_[a-z0-9]{16}_[A-Za-z0-9_-]{32}$/);
  assert.notEqual(second, key.password);
  assert.deepEqual(
    rotated.json.secrets.map((s: { id: string }) => s.id),
    [key.secretId, rotated.json.secret_id],
  );
  // Both work, over SMTP and HTTP.
  for (const secret of [key.password, second]) {
    const { client, reply } = await login(relay, key.username, secret);
    await client.quit();
    assert.equal(reply.code, 235, reply.raw);
    assert.equal((await call(relay, "/v1/credentials", { token: secret })).status, 200);
  }
  // A third secret waits until one of the two goes.
  assertError(
    await call(relay, `/v1/credentials/${key.id}/rotate`, { method: "POST" }),
    409,
    "conflict",
  );

  const revoked = await call(relay, `/v1/credentials/${key.id}/secrets/${key.secretId}`, {
    method: "DELETE",
  });
  assert.equal(revoked.status, 200, revoked.text);
  assert.deepEqual(revoked.json.secrets.map((s: { id: string }) => s.id), [rotated.json.secret_id]);
  const old = await login(relay, key.username, key.password);
  await old.client.quit();
  assert.equal(old.reply.code, 535, old.reply.raw);
  assert.match(old.reply.raw, /^535 5\.7\.8 /);
  assertError(await call(relay, "/v1/credentials", { token: key.password }), 401, "unauthorized");
  const fresh = await login(relay, key.username, second, "XOAUTH2");
  await fresh.client.quit();
  assert.equal(fresh.reply.code, 235, fresh.reply.raw);

  // The last secret cannot go on its own; unknown ones are 404s.
  assertError(
    await call(relay, `/v1/credentials/${key.id}/secrets/${rotated.json.secret_id}`, {
      method: "DELETE",
    }),
    409,
    "conflict",
  );
  assertError(
    await call(relay, `/v1/credentials/${key.id}/secrets/sk_nosuchsecret`, { method: "DELETE" }),
    404,
    "not_found",
  );
});

Deno.test("DELETE /v1/credentials/:id revokes it at once, for open sessions at their next MAIL FROM", async () => {
  await using env = await relayAndSink();
  const { relay, sink } = env;
  const key = await newCredential(relay);
  await call(relay, `/v1/credentials/${key.id}/rotate`, { method: "POST" });
  const client = await session(relay, key);
  const first = await send(client, "app@example.test", message({ from: "app@example.test" }));
  assert.equal(first.code, 250, first.raw);

  const res = await call(relay, `/v1/credentials/${key.id}`, { method: "DELETE" });
  assert.equal(res.status, 200);
  assert.ok(res.json.revoked_at);

  const next = await client.command("MAIL FROM:<app@example.test>");
  assert.match(next.raw, /^535 5\.7\.8 /);
  await client.quit();
  const again = await login(relay, key.username, key.password);
  await again.client.quit();
  assert.equal(again.reply.code, 535);
  assertError(await call(relay, "/v1/credentials", { token: key.password }), 401, "unauthorized");
  assertError(
    await call(relay, `/v1/credentials/${key.id}/rotate`, { method: "POST" }),
    409,
    "conflict",
  );
  await sink.waitFor(1);
  assert.equal(sink.messages.length, 1);
});

Deno.test("allowed_ips refuses AUTH from elsewhere with 535 5.7.8, re-checked at each MAIL FROM", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const key = await newCredential(relay, { allowed_ips: ["10.0.0.0/8", "2001:db8::/32"] });
  const refused = await login(relay, key.username, key.password);
  await refused.client.quit();
  assert.match(refused.reply.raw, /^535 5\.7\.8 /);

  const patched = await call(relay, `/v1/credentials/${key.id}`, {
    method: "PATCH",
    body: { allowed_ips: ["127.0.0.0/8"] },
  });
  assert.equal(patched.status, 200, patched.text);
  assert.deepEqual(patched.json.allowed_ips, ["127.0.0.0/8"]);
  const client = await session(relay, key);
  const ok = await send(client, "app@example.test", message({ from: "app@example.test" }));
  assert.equal(ok.code, 250, ok.raw);

  await call(relay, `/v1/credentials/${key.id}`, {
    method: "PATCH",
    body: { allowed_ips: ["10.0.0.0/8"] },
  });
  const next = await client.command("MAIL FROM:<app@example.test>");
  assert.match(next.raw, /^535 5\.7\.8 /);
  await client.quit();
});

Deno.test("MAIL FROM and From: must align with the credential's domains, else 550 5.7.1", async () => {
  await using env = await relayAndSink();
  const { relay, sink } = env;
  const key = await newCredential(relay, { domains: ["example.test", "Other.TEST."] });
  const view = await call(relay, `/v1/credentials/${key.id}`);
  assert.deepEqual(view.json.domains, ["example.test", "other.test"]);
  const client = await session(relay, key);

  const wrongEnvelope = await client.command("MAIL FROM:<app@elsewhere.test>");
  assert.match(wrongEnvelope.raw, /^550 5\.7\.1 /);
  // A look-alike is not a subdomain.
  const lookAlike = await client.command("MAIL FROM:<app@badexample.test>");
  assert.match(lookAlike.raw, /^550 5\.7\.1 /);
  await client.command("RSET");

  const sub = await send(
    client,
    "bounces@mail.example.test",
    message({ from: "App <app@example.test>", subject: "aligned" }),
  );
  assert.equal(sub.code, 250, sub.raw);

  for (
    const from of [
      "evil@elsewhere.test",
      '"app@example.test" <evil@elsewhere.test>',
      "a@example.test, b@elsewhere.test",
    ]
  ) {
    const reply = await send(client, "app@example.test", message({ from, subject: "misaligned" }));
    assert.match(reply.raw, /^550 5\.7\.1 /, `From: ${from}`);
  }
  // No From: at all cannot be checked, so it is refused as well.
  const noFrom = await send(
    client,
    "app@example.test",
    new TextEncoder().encode("To: user@dest.test\r\nSubject: none\r\n\r\nhi\r\n"),
  );
  assert.match(noFrom.raw, /^550 5\.7\.1 /);
  // The session stays usable.
  const last = await send(
    client,
    "app@other.test",
    message({ from: "app@other.test", subject: "aligned" }),
  );
  assert.equal(last.code, 250, last.raw);
  await client.quit();

  await sink.waitFor(2);
  await queueDrained(relay);
  assert.deepEqual(sink.messages.map((m) => /Subject: (\w+)/.exec(m.headers)![1]), [
    "aligned",
    "aligned",
  ]);
  assert.ok(relay.logs.some((l) => l.event === "smtp.rejected" && l.reason === "from_not_allowed"));
});

Deno.test("rate_limit and daily_quota answer 451 4.7.0 once spent; the quota survives a restart", async () => {
  await using env = await relayAndSink();
  let relay = env.relay;
  const rated = await newCredential(relay, { name: "rated", rate_limit: "2/min" });
  const quota = await newCredential(relay, { name: "quota", daily_quota: 2 });

  const client = await session(relay, rated);
  for (let i = 0; i < 2; i++) {
    const ok = await send(client, "app@example.test", message({ from: "app@example.test" }));
    assert.equal(ok.code, 250, ok.raw);
  }
  const limited = await client.command("MAIL FROM:<app@example.test>");
  assert.match(limited.raw, /^451 4\.7\.0 /);
  await client.quit();

  const q = await session(relay, quota);
  for (let i = 0; i < 2; i++) {
    const ok = await send(q, "app@example.test", message({ from: "app@example.test" }));
    assert.equal(ok.code, 250, ok.raw);
  }
  const over = await q.command("MAIL FROM:<app@example.test>");
  assert.match(over.raw, /^451 4\.7\.0 /);
  await q.quit();

  // The day's count is in KV: a restart does not hand out a fresh quota.
  relay = await relay.restart();
  try {
    const after = await session(relay, quota);
    const still = await after.command("MAIL FROM:<app@example.test>");
    assert.match(still.raw, /^451 4\.7\.0 /);
    await after.command("RSET");
    // Raising the quota lets the next message through at once.
    const raised = await call(relay, `/v1/credentials/${quota.id}`, {
      method: "PATCH",
      body: { daily_quota: 3 },
    });
    assert.equal(raised.json.daily_quota, 3);
    const ok = await send(after, "app@example.test", message({ from: "app@example.test" }));
    assert.equal(ok.code, 250, ok.raw);
    await after.quit();
  } finally {
    await relay[Symbol.asyncDispose]();
  }
});

Deno.test("over HTTP, a spent rate_limit or daily_quota is a 429", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const rated = await newCredential(relay, { name: "rated", rate_limit: "1/min" });
  const quota = await newCredential(relay, { name: "quota", daily_quota: 1 });
  const mail = { from: "app@example.test", to: "user@dest.test", subject: "hi", text: "hello" };
  for (const key of [rated, quota]) {
    const first = await call(relay, "/v1/messages", { body: mail, token: key.password });
    assert.equal(first.status, 202, first.text);
    const second = await call(relay, "/v1/messages", { body: mail, token: key.password });
    assertError(second, 429, "rate_limited");
    assert.ok(second.json.error.details.retry_after_s > 0, second.text);
  }
  // The SMTP side shares the same count.
  const client = await session(relay, quota);
  const over = await client.command("MAIL FROM:<app@example.test>");
  assert.match(over.raw, /^451 4\.7\.0 /);
  await client.quit();
});

Deno.test("PATCH /v1/credentials/:id changes scopes and validates every field", async () => {
  await using env = await relayAndSink();
  const { relay } = env;
  const key = await newCredential(relay);
  const path = `/v1/credentials/${key.id}`;
  const patched = await call(relay, path, {
    method: "PATCH",
    body: {
      name: "crm",
      domains: ["example.test"],
      rate_limit: "100/min",
      daily_quota: 5000,
      pool: "transactional",
      dsn: false,
    },
  });
  assert.equal(patched.status, 200, patched.text);
  assert.deepEqual(
    [
      patched.json.name,
      patched.json.domains,
      patched.json.rate_limit,
      patched.json.daily_quota,
      patched.json.pool,
      patched.json.dsn,
    ],
    ["crm", ["example.test"], "100/min", 5000, "transactional", false],
  );
  const cleared = await call(relay, path, {
    method: "PATCH",
    body: { rate_limit: null, pool: null },
  });
  assert.deepEqual([cleared.json.rate_limit, cleared.json.pool, cleared.json.daily_quota], [
    null,
    null,
    5000,
  ]);

  const bad: [unknown, string][] = [
    [{ allowed_ips: ["10.0.0.0/33"] }, "allowed_ips.0"],
    [{ allowed_ips: "10.0.0.0/8" }, "allowed_ips"],
    [{ rate_limit: "lots" }, "rate_limit"],
    [{ daily_quota: 0 }, "daily_quota"],
    [{ daily_quota: "10" }, "daily_quota"],
    [{ domains: ["not a domain"] }, "domains.0"],
    [{ domains: ["a".repeat(64) + ".test"] }, "domains.0"],
    [{ pool: "a b" }, "pool"],
    [{ dsn: "yes" }, "dsn"],
    [{ name: "x".repeat(101) }, "name"],
    [{ colour: "blue" }, ""],
    [{}, ""],
  ];
  for (const [body, field] of bad) {
    const res = await call(relay, path, { method: "PATCH", body });
    assertError(res, 400, "invalid_request");
    assert.ok(
      res.json.error.details.some((d: { path: string }) => d.path === field),
      `${JSON.stringify(body)} → ${res.text}`,
    );
  }
  assertError(await call(relay, path, { method: "PATCH", body: "{" }), 400, "invalid_request");
  assertError(
    await call(relay, "/v1/credentials/cr_0000000000000000", {
      method: "PATCH",
      body: { dsn: true },
    }),
    404,
    "not_found",
  );
  assertError(
    await call(relay, "/v1/credentials", { body: { name: "x", domains: ["-x.test"] } }),
    400,
    "invalid_request",
  );
});

Deno.test("trusted-network relaying belongs to POSTERN_TRUSTED_ACCOUNT", async () => {
  await using env = await relayAndSink();
  const printers = await newAccount(env.relay, "printers", { require_verified_sender: false });
  const relay = await env.relay.restart({
    POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8",
    POSTERN_TRUSTED_ACCOUNT: printers,
  });
  try {
    const { SmtpClient } = await import("./support/smtp_client.ts");
    const { client } = await SmtpClient.connect({ port: relay.smtpPort });
    await client.command("EHLO printer.test");
    const reply = await send(
      client,
      "scanner@office.test",
      message({ from: "scanner@office.test" }),
    );
    await client.quit();
    assert.equal(reply.code, 250, reply.raw);
    const id = queuedId(reply.raw);
    assertError(await call(relay, `/v1/messages/${id}`), 404, "not_found");
    assert.equal((await call(relay, `/v1/messages/${id}`, { account: printers })).status, 200);
  } finally {
    await relay[Symbol.asyncDispose]();
  }
  // An account that does not exist stops start-up with one line naming the setting.
  await assert.rejects(
    startRelay({ env: { POSTERN_TRUSTED_ACCOUNT: "acc_nosuchaccount0" } }),
    /POSTERN_TRUSTED_ACCOUNT: no account "acc_nosuchaccount0"/,
  );
});
