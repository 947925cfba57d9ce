/**
 * No open relay, end to end: a client that is neither authenticated nor in a trusted network
 * cannot start a transaction at all, and no address trick (percent hack, source route, bang
 * path, quoted local part with @, several @) gets a recipient past the relay from anyone — an
 * untrusted client, an authenticated one or a trusted network. Tricks are refused, never
 * rewritten: the sink never hears of the hidden destination. Address lengths follow RFC 5321
 * §4.5.3.1, counted in octets.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { queuedId, SmtpClient, type SmtpReply } from "./support/smtp_client.ts";
import { newCredential, session } from "./support/tenants.ts";
import { taggedMessage } from "./support/operations.ts";

/** Addresses that would relay on to evil.example if the relay read them as routes. */
const TRICKS = [
  "victim%evil.example@dest.test",
  "victim%evil.example%dest.test@dest.test",
  "@dest.test:victim@evil.example",
  "@dest.test,@relay.test:victim@evil.example",
  "evil.example!victim@dest.test",
  "dest.test!evil.example!victim@dest.test",
  '"victim@evil.example"@dest.test',
  '"victim%evil.example"@dest.test',
  "victim@evil.example@dest.test",
  "victim@dest.test@evil.example",
  "victim@[192.0.2.1]",
  "victim@[IPv6:2001:db8::1]",
  "victim",
  "postmaster",
  "victim@evil.example.",
  ".victim@dest.test",
  "victim..x@dest.test",
];

interface Env {
  relay: Relay;
  sink: Sink;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startEnv(env: Record<string, string> = {}): Promise<Env> {
  const sink = await startSink();
  try {
    const relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_RETRY_SCHEDULE: "1s",
        POSTERN_POLL_INTERVAL: "200ms",
        // Many refusals in a row are the point here, not an abuse to slow down.
        POSTERN_SMTP_SOFT_ERROR_LIMIT: "1000",
        POSTERN_SMTP_HARD_ERROR_LIMIT: "1000",
        ...env,
      },
    });
    return {
      relay,
      sink,
      async [Symbol.asyncDispose]() {
        await relay[Symbol.asyncDispose]();
        await sink.close();
      },
    };
  } catch (error) {
    await sink.close();
    throw error;
  }
}

interface Commands {
  command(line: string): Promise<SmtpReply | { code: number; raw: string }>;
}

/** Tries every trick as a recipient, then as a sender; each must be refused with 5yz. */
async function assertTricksRefused(client: Commands, who: string) {
  for (const trick of TRICKS) {
    const mail = await client.command("MAIL FROM:<app@origin.test>");
    assert.equal(mail.code, 250, `${who}: ${mail.raw}`);
    const rcpt = await client.command(`RCPT TO:<${trick}>`);
    assert.ok(rcpt.code >= 500, `${who}: RCPT TO:<${trick}> was not refused: ${rcpt.raw}`);
    assert.equal((await client.command("RSET")).code, 250);
    const sender = await client.command(`MAIL FROM:<${trick}>`);
    assert.ok(sender.code >= 500, `${who}: MAIL FROM:<${trick}> was not refused: ${sender.raw}`);
    assert.equal((await client.command("RSET")).code, 250);
  }
}

/** A clean message to marker@dest.test, then: the sink heard of nobody else. */
async function assertOnlyMarkerReached(env: Env, send: () => Promise<void>) {
  await send();
  await env.sink.waitFor(1);
  assert.deepEqual([...env.sink.attempts.keys()], ["marker@dest.test"]);
  assert.equal(env.sink.messages.length, 1);
}

Deno.test("an untrusted, unauthenticated client cannot relay with any address trick, on any port", async () => {
  await using env = await startEnv();
  const ca = await Deno.readTextFile(`${env.relay.dataDir}/dev-cert.pem`);
  const opens: Array<[string, () => Promise<SmtpClient>]> = [
    ["submission", async () => {
      const { client } = await SmtpClient.connect({ port: env.relay.smtpPort });
      await client.command("EHLO client.test");
      return client;
    }],
    ["submission after STARTTLS", async () => {
      const { client } = await SmtpClient.connect({ port: env.relay.smtpPort });
      await client.command("EHLO client.test");
      await client.startTls({ caCert: ca });
      await client.command("EHLO client.test");
      return client;
    }],
    ["SMTPS claiming to be localhost", async () => {
      const { client } = await SmtpClient.connect({
        port: env.relay.smtpsPort,
        implicitTls: { caCert: ca },
      });
      await client.command("EHLO localhost");
      return client;
    }],
  ];
  for (const [name, open] of opens) {
    const client = await open();
    try {
      // Proxy commands that would let a client claim another address are not offered.
      for (const proxy of ["XCLIENT ADDR=10.0.0.1", "XFORWARD ADDR=10.0.0.1"]) {
        const r = await client.command(proxy);
        assert.ok(r.code >= 500, `${name}: ${proxy}: ${r.raw}`);
      }
      for (const address of [...TRICKS, "victim@dest.test", ""]) {
        const mail = await client.command(`MAIL FROM:<${address}>`);
        assert.ok(mail.code >= 500, `${name}: MAIL FROM:<${address}>: ${mail.raw}`);
        const rcpt = await client.command(`RCPT TO:<${address || "victim@dest.test"}>`);
        assert.ok(rcpt.code >= 500, `${name}: RCPT TO:<${address}>: ${rcpt.raw}`);
      }
      assert.ok((await client.command("DATA")).code >= 500, `${name}: DATA`);
    } finally {
      await client.quit();
    }
  }
  assert.equal(env.relay.logs.filter((l) => l.event === "smtp.accepted").length, 0);
  assert.equal(env.sink.connections, 0, "the relay never tried to deliver anything");
});

Deno.test("an authenticated client's address tricks are refused, not rewritten", async () => {
  await using env = await startEnv();
  const credential = await newCredential(env.relay);
  const client = await session(env.relay, credential);
  try {
    await assertTricksRefused(client, "authenticated");
    // smtp-server would strip a source route and relay to what is left; the relay refuses it.
    assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
    const route = await client.command("RCPT TO:<@dest.test:victim@evil.example>");
    assert.match(route.raw, /^553 5\.1\.3 .*source_route/, route.raw);
    const percent = await client.command("RCPT TO:<victim%evil.example@dest.test>");
    assert.match(percent.raw, /^553 5\.1\.3 .*percent_hack/, percent.raw);
    assert.equal((await client.command("RSET")).code, 250);
    // A trick beside a good recipient: the good one is accepted, the trick is not.
    assert.equal((await client.command("MAIL FROM:<app@origin.test>")).code, 250);
    assert.ok((await client.command("RCPT TO:<victim%evil.example@dest.test>")).code >= 500);
    assert.equal((await client.command("RCPT TO:<marker@dest.test>")).code, 250);
    assert.equal((await client.command("DATA")).code, 354);
    await client.write(new TextEncoder().encode(taggedMessage("auth") + ".\r\n"));
    assert.equal((await client.reply()).code, 250);
  } finally {
    await client.quit();
  }
  await assertOnlyMarkerReached(env, () => Promise.resolve());
});

Deno.test("a trusted network relays without AUTH by design, and its address tricks are refused too", async () => {
  await using env = await startEnv({ POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32" });
  const client = await SmtpClient.open(env.relay.smtpPort);
  try {
    await client.hello();
    await assertTricksRefused(client, "trusted");
  } finally {
    await client.quit();
  }
  await assertOnlyMarkerReached(env, async () => {
    const c = await SmtpClient.open(env.relay.smtpPort);
    try {
      await c.hello();
      queuedId(await c.send("app@origin.test", "marker@dest.test", taggedMessage("trusted")));
    } finally {
      await c.quit();
    }
  });
});

Deno.test("address lengths follow RFC 5321 §4.5.3.1 in octets: local part 64, domain 255, path 256", async () => {
  await using env = await startEnv();
  const credential = await newCredential(env.relay);
  const client = await session(env.relay, credential);
  const label = (n: number) => "b".repeat(n);
  const cases: Array<[string, string, boolean]> = [
    ["a 64-octet local part", `${"a".repeat(64)}@dest.test`, true],
    ["a 65-octet local part", `${"a".repeat(65)}@dest.test`, false],
    ["a 64-octet local part of 2-octet characters", `${"é".repeat(32)}@dest.test`, true],
    ["a 66-octet local part of 33 characters", `${"é".repeat(33)}@dest.test`, false],
    [
      "a 254-octet path (256 with its brackets)",
      `${"a".repeat(64)}@${label(60)}.${label(60)}.${label(60)}.${label(6)}`,
      true,
    ],
    [
      "a 255-octet path",
      `${"a".repeat(65 - 1)}@${label(60)}.${label(60)}.${label(60)}.${label(7)}`,
      false,
    ],
    ["a 63-octet label", `a@${label(63)}.test`, true],
    ["a 64-octet label", `a@${label(64)}.test`, false],
  ];
  try {
    for (const [name, address, ok] of cases) {
      const octets = new TextEncoder().encode(address).length;
      // SMTPUTF8: without it a UTF-8 address is refused before its length is looked at.
      assert.equal((await client.command("MAIL FROM:<app@origin.test> SMTPUTF8")).code, 250);
      const rcpt = await client.command(`RCPT TO:<${address}>`);
      assert.equal(rcpt.code === 250, ok, `${name} (${octets} octets): ${rcpt.raw}`);
      if (!ok) assert.match(rcpt.raw, /^5\d\d 5\.1\.[23] /, `${name}: ${rcpt.raw}`);
      assert.equal((await client.command("RSET")).code, 250);
    }
  } finally {
    await client.quit();
  }
});
