/**
 * End to end: DKIM signing at intake. Mail whose From: domain is a verified domain of the
 * sender's account leaves the relay signed (relaxed/relaxed, From over-signed), and two
 * independent verifiers accept what the sink received: mailauth's `authenticate` and Debian's
 * python3-dkim (dkimpy), both reading the keys from the loopback DNS server.
 */
import assert from "node:assert/strict";
import type { ReceivedMessage } from "./support/sink.ts";
import {
  call,
  dkimpyVerify,
  dkimSignatures,
  mailauthVerify,
  message,
  newAccount,
  newCredential,
  publish,
  send,
  session,
  startTenantRelay,
  type TenantEnv,
  verifiedDomain as verifiedDomainIn,
} from "./support/tenants.ts";

type Env = TenantEnv;

const start = () => startTenantRelay();

/** Adds a domain, publishes its records in the zone and verifies it. */
function verifiedDomain(
  env: Env,
  name: string,
  options: { algorithms?: string[]; account?: string } = {},
) {
  return verifiedDomainIn(env.relay, env.dns.zone, name, options);
}

/** Sends one message with a fresh credential session and waits for the sink to have it. */
async function deliver(
  env: Env,
  credential: Awaited<ReturnType<typeof newCredential>>,
  options: { mailFrom?: string; from: string; subject: string; body?: string; headers?: string[] },
): Promise<ReceivedMessage> {
  const before = env.sink.messages.length;
  const client = await session(env.relay, credential);
  const reply = await send(
    client,
    options.mailFrom ?? "app@example.test",
    message({
      from: options.from,
      subject: options.subject,
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    }),
  );
  await client.quit();
  assert.equal(reply.code, 250, reply.raw);
  const messages = await env.sink.waitFor(before + 1, { timeoutMs: 30_000 });
  const received = messages.find((m) => m.headers.includes(`Subject: ${options.subject}`));
  assert.ok(received, `no message "${options.subject}" at the sink`);
  return received;
}

const month = () => new Date().toISOString().slice(0, 7).replace("-", "");

Deno.test("mail from a verified domain arrives signed with RSA and Ed25519; mailauth and dkimpy verify it", async () => {
  await using env = await start();
  await verifiedDomain(env, "example.test", { algorithms: ["rsa", "ed25519"] });
  const key = await newCredential(env.relay);
  const received = await deliver(env, key, {
    from: '"App, Inc." <app@example.test>',
    subject: "signed",
    headers: [
      "Reply-To:   support@example.test",
      "MIME-Version: 1.0",
      "Content-Type: text/plain;\r\n\tcharset=utf-8",
      "X-Unsigned: anything",
    ],
    body: "Line with trailing space   \r\n.dot-stuffed line\r\n\tindented\r\n\r\n\r\n",
  });

  const signatures = dkimSignatures(received.headers);
  assert.equal(signatures.length, 2);
  assert.deepEqual(signatures.map((s) => [s.get("d"), s.get("s"), s.get("a"), s.get("c")]), [
    ["example.test", `pst${month()}`, "rsa-sha256", "relaxed/relaxed"],
    ["example.test", `pst${month()}e`, "ed25519-sha256", "relaxed/relaxed"],
  ]);
  for (const s of signatures) {
    const h = s.get("h")!.toLowerCase().split(":");
    // From over-signed: listed once more than it occurs, so none can be added later.
    assert.equal(h.filter((n) => n === "from").length, 2, String(s.get("h")));
    for (
      const name of [
        "subject",
        "date",
        "message-id",
        "to",
        "reply-to",
        "content-type",
        "mime-version",
      ]
    ) {
      assert.ok(h.includes(name), `h= lacks ${name}: ${s.get("h")}`);
    }
    assert.ok(!h.includes("x-unsigned") && !h.includes("received"));
  }
  // The signatures sit above everything else the relay sends.
  assert.match(received.text, /^DKIM-Signature: /);

  const mailauth = await mailauthVerify(received.raw, env.dns.zone);
  assert.deepEqual(mailauth.dkim.map((r) => [r.result, r.domain, r.selector]), [
    ["pass", "example.test", `pst${month()}`],
    ["pass", "example.test", `pst${month()}e`],
  ]);
  assert.equal(mailauth.dmarc, "pass");
  assert.deepEqual(await dkimpyVerify(received.raw, env.dns), [true, true]);

  // A From: added in transit breaks both signatures (what over-signing is for).
  const tampered = new TextEncoder().encode(
    received.text.replace(/\r\nFrom: /, "\r\nFrom: ceo@example.test\r\nFrom: "),
  );
  assert.deepEqual((await mailauthVerify(tampered, env.dns.zone)).dkim.map((r) => r.result), [
    "fail",
    "fail",
  ]);
  assert.deepEqual(await dkimpyVerify(tampered, env.dns), [false, false]);
});

Deno.test("a subdomain's mail is signed by its verified parent; a large message is signed as it streams", async () => {
  await using env = await start();
  await verifiedDomain(env, "example.test");
  const key = await newCredential(env.relay);
  const sub = await deliver(env, key, {
    mailFrom: "bounce@news.example.test",
    from: "news@news.example.test",
    subject: "newsletter",
  });
  assert.deepEqual(dkimSignatures(sub.headers).map((s) => s.get("d")), ["example.test"]);
  assert.deepEqual(await dkimpyVerify(sub.raw, env.dns), [true]);

  // 6 MB: far beyond what one commit holds, so its chunks are written ahead while it is hashed.
  const line = "The quick brown fox jumps over the lazy dog, again and again.  \r\n";
  const body = line.repeat(Math.ceil(6_000_000 / line.length));
  const big = await deliver(env, key, { from: "app@example.test", subject: "large", body });
  assert.ok(big.raw.length > 6_000_000);
  const verdict = await mailauthVerify(big.raw, env.dns.zone);
  assert.deepEqual(verdict.dkim.map((r) => r.result), ["pass"]);
  assert.deepEqual(await dkimpyVerify(big.raw, env.dns), [true]);
});

Deno.test("mail sent over the HTTP API is signed the same way", async () => {
  await using env = await start();
  await verifiedDomain(env, "example.test", { algorithms: ["ed25519"] });
  const key = await newCredential(env.relay);
  const res = await call(env.relay, "/v1/messages", {
    token: key.password,
    body: {
      from: { name: "App", address: "app@example.test" },
      to: "user@dest.test",
      subject: "over http",
      text: "Hello over HTTP.",
      html: "<p>Hello over <b>HTTP</b>.</p>",
    },
  });
  assert.equal(res.status, 202, res.text);
  const [received] = await env.sink.waitFor(1, { timeoutMs: 30_000 });
  assert.deepEqual(dkimSignatures(received!.headers).map((s) => s.get("a")), ["ed25519-sha256"]);
  assert.deepEqual((await mailauthVerify(received!.raw, env.dns.zone)).dkim.map((r) => r.result), [
    "pass",
  ]);
  assert.deepEqual(await dkimpyVerify(received!.raw, env.dns), [true]);
});

Deno.test("mail is not signed for an unverified domain; another account's domain is refused, not sent unsigned", async () => {
  await using env = await start();
  const other = await newAccount(env.relay, "other");
  await verifiedDomain(env, "example.test", { account: other });
  const pending = await call(env.relay, "/v1/domains", { body: { name: "pending.test" } });
  assert.equal(pending.status, 201);
  const key = await newCredential(env.relay);

  // tests/tenant_security_test.ts tries another account's domain every way; here, the From.
  const client = await session(env.relay, key);
  const foreign = await send(
    client,
    "app@pending.test",
    message({ from: "app@example.test", subject: "foreign" }),
  );
  await client.quit();
  assert.match(foreign.raw, /^550 5\.7\.1 /);
  const unverified = await deliver(env, key, {
    mailFrom: "app@pending.test",
    from: "app@pending.test",
    subject: "unverified",
  });
  assert.deepEqual(dkimSignatures(unverified.headers), []);
  // The owner's credential does get it signed.
  const owner = await newCredential(env.relay, {}, other);
  const own = await deliver(env, owner, { from: "app@example.test", subject: "owner" });
  assert.deepEqual(await dkimpyVerify(own.raw, env.dns), [true]);
});

Deno.test("rotate-dkim signs with the old selector until the new one verifies, then with the new", async () => {
  await using env = await start();
  const domain = await verifiedDomain(env, "example.test");
  const key = await newCredential(env.relay);
  const oldSelector = `pst${month()}`;

  const rotated = await call(env.relay, `/v1/domains/${domain.id}/rotate-dkim`, { method: "POST" });
  assert.equal(rotated.status, 201, rotated.text);
  const newSelector = `pst${month()}r2`;
  assert.deepEqual(
    rotated.json.dkim.map((k: { selector: string; status: string }) => [k.selector, k.status]),
    [[oldSelector, "active"], [newSelector, "pending"]],
  );
  const newRecord = rotated.json.records.find((r: { selector?: string }) =>
    r.selector === newSelector
  );
  assert.ok(newRecord, rotated.text);
  assert.equal(
    (await call(env.relay, `/v1/domains/${domain.id}/rotate-dkim`, { method: "POST" })).status,
    409,
  );

  // Not yet published: a verification keeps the old key and the domain verified.
  const early = await call(env.relay, `/v1/domains/${domain.id}/verify`, { method: "POST" });
  assert.equal(early.json.verified, true);
  assert.equal(
    early.json.records.find((r: { selector?: string }) => r.selector === newSelector).state,
    "missing",
  );
  const before = await deliver(env, key, { from: "app@example.test", subject: "before" });
  assert.deepEqual(dkimSignatures(before.headers).map((s) => s.get("s")), [oldSelector]);
  assert.deepEqual(await dkimpyVerify(before.raw, env.dns), [true]);

  publish(env.dns.zone, [newRecord]);
  const done = await call(env.relay, `/v1/domains/${domain.id}/verify`, { method: "POST" });
  assert.equal(done.json.verified, true, done.text);
  assert.deepEqual(
    done.json.dkim.map((k: { selector: string; status: string }) => [k.selector, k.status]),
    [[oldSelector, "retired"], [newSelector, "active"]],
  );
  // The retired selector's record is no longer asked for.
  const read = await call(env.relay, `/v1/domains/${domain.id}`);
  assert.deepEqual(
    read.json.records.filter((r: { purpose: string }) => r.purpose === "dkim").map((
      r: { selector: string },
    ) => r.selector),
    [newSelector],
  );
  const after = await deliver(env, key, { from: "app@example.test", subject: "after" });
  assert.deepEqual(dkimSignatures(after.headers).map((s) => s.get("s")), [newSelector]);
  assert.deepEqual((await mailauthVerify(after.raw, env.dns.zone)).dkim.map((r) => r.result), [
    "pass",
  ]);
  assert.deepEqual(await dkimpyVerify(after.raw, env.dns), [true]);
});

Deno.test("the relay stops at SIGTERM, exit code 0, with its signing workers running", async () => {
  // Workers are started only from 3 cores by default: ask for them, whatever the machine.
  await using env = await startTenantRelay({ POSTERN_DKIM_WORKERS: "2" });
  await verifiedDomain(env, "example.test");
  const key = await newCredential(env.relay);
  const signed = await deliver(env, key, { from: "app@example.test", subject: "before stop" });
  assert.deepEqual(await dkimpyVerify(signed.raw, env.dns), [true]);
  // relay.stop() rejects if the process is still there 15 s after the signal.
  const { code } = await env.relay.stop();
  assert.equal(code, 0);
  assert.ok(env.relay.logs.some((line) => line.event === "shutdown.done"));
});
