/**
 * What the relay writes down, end to end: JSON log lines an operator can follow by message id,
 * and no secret in clear, neither in the logs nor in the KV file.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import type SMTPTransport from "nodemailer/lib/smtp-transport";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { dumpKv, waitUntil } from "./support/operations.ts";

interface Scenario {
  relay: Relay;
  sink: Sink;
  adminToken: string;
  username: string;
  password: string;
  /** Queue id of each accepted transaction, by recipient. */
  ids: Map<string, string>;
}

const BANNER_TOKEN = /Admin token \(shown once, keep it safe\): (\S+)/;

function transport(relay: Relay, auth: SMTPTransport.Options["auth"], extra = {}) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port: relay.smtpPort,
    secure: false,
    requireTLS: true,
    name: "client.test",
    tls: { rejectUnauthorized: false },
    auth,
    ...extra,
  });
}

/**
 * Starts a relay that generates its admin token, creates a credential, authenticates with it
 * every way there is (PLAIN, LOGIN, XOAUTH2, the HTTP bearer) plus one wrong try that uses the
 * admin token as password, and sends mail that is delivered at once or after one deferral.
 */
async function runScenario(): Promise<Scenario> {
  const sink = await startSink({
    behaviors: {
      "later@dest.test": { sequence: [{ code: 452, message: "4.2.2 Mailbox full" }, "accept"] },
    },
  });
  try {
    const relay = await startRelay({
      env: {
        POSTERN_ADMIN_TOKEN: "", // generated and printed once, like a first start
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_RETRY_SCHEDULE: "1s",
        POSTERN_POLL_INTERVAL: "200ms",
      },
    });
    try {
      await waitUntil(() => BANNER_TOKEN.test(relay.stderr), "the admin token banner on stderr");
      const adminToken = BANNER_TOKEN.exec(relay.stderr)![1]!;
      const created = await relay.api("/v1/credentials", {
        body: { name: "wordpress" },
        token: adminToken,
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const { username, password } = created.json as { username: string; password: string };

      const ids = new Map<string, string>();
      const send = async (to: string, auth: SMTPTransport.Options["auth"], extra = {}) => {
        const info = await transport(relay, auth, extra).sendMail({
          from: "app@origin.test",
          to,
          subject: `for ${to}`,
          text: "Hello.\n",
        });
        ids.set(to, /queued as (\S+)/.exec(info.response)![1]!);
      };
      await send("plain@dest.test", { user: username, pass: password });
      await send("login@dest.test", { user: username, pass: password }, { authMethod: "LOGIN" });
      await send("oauth@dest.test", { type: "OAuth2", user: username, accessToken: password });
      await send("later@dest.test", { user: username, pass: password });
      await assert.rejects(
        send("wrong@dest.test", { user: username, pass: adminToken }),
        (error: { responseCode?: number }) => error.responseCode === 535,
      );

      const status = await relay.api(`/v1/messages/${ids.get("plain@dest.test")}`, {
        token: password,
      });
      assert.equal(status.status, 200, JSON.stringify(status.json));

      await sink.waitFor(4);
      await waitUntil(
        () => [...ids.values()].every((id) => delivered(relay.logs, id)),
        "a successful delivery attempt logged for every message",
      );
      return { relay, sink, adminToken, username, password, ids };
    } catch (error) {
      await relay[Symbol.asyncDispose]();
      throw error;
    }
  } catch (error) {
    await sink.close();
    throw error;
  }
}

function delivered(logs: Relay["logs"], id: string): boolean {
  return logs.some((l) => l.event === "delivery.attempt" && l.msg === id && l.result === "success");
}

/** The random part of a `pst_<credential>_<random>` key (which may itself hold "_"). */
function randomPart(key: string): string {
  const m = /^pst_[a-z0-9]{16}_(.+)$/.exec(key);
  assert.ok(m, `an API key: ${key}`);
  return m[1]!;
}

/** The ways a secret could be written down: as is, and in the encodings SMTP AUTH uses. */
function encodings(secret: string): string[] {
  return [secret, btoa(secret), Buffer.from(secret).toString("hex")];
}

Deno.test("logs are JSON lines with one line per transaction and per delivery attempt, each naming the message, and never a secret", async () => {
  const { relay, sink, adminToken, password, ids } = await runScenario();
  try {
    assert.deepEqual((await relay.stop()).code, 0);
    const unparsed = relay.logs.filter((line) => "unparsed" in line);
    assert.deepEqual(unparsed, [], "every stdout line is a JSON object");
    for (const line of relay.logs) {
      assert.equal(typeof line.ts, "string", JSON.stringify(line));
      assert.equal(typeof line.event, "string", JSON.stringify(line));
    }

    const accepted = relay.logs.filter((line) => line.event === "smtp.accepted");
    assert.deepEqual(accepted.map((line) => line.msg).sort(), [...ids.values()].sort());
    for (const [rcpt, id] of ids) {
      const attempts = relay.logs.filter((l) => l.event === "delivery.attempt" && l.msg === id);
      assert.equal(
        attempts.length,
        sink.attempts.get(rcpt),
        `one delivery.attempt line per attempt the sink saw for ${rcpt}`,
      );
    }
    const later = relay.logs.filter((l) =>
      l.event === "delivery.attempt" && l.msg === ids.get("later@dest.test")
    );
    assert.deepEqual(later.map((line) => line.result), ["transient", "success"]);
    assert.ok(relay.logs.some((line) => line.event === "smtp.auth_failed"));

    // The banner is the one place the admin token may appear, once, on the first start.
    const banner = relay.stderr.split("\n").filter((line) => line.includes(adminToken));
    assert.equal(banner.length, 2, relay.stderr);
    const stderrBesideBanner = relay.stderr.split("\n")
      .filter((line) => !BANNER_TOKEN.test(line) && !/-H "Authorization: Bearer /.test(line))
      .join("\n");
    const stdout = relay.logs.map((line) => JSON.stringify(line)).join("\n");
    for (const [name, secret] of [["password", password], ["admin token", adminToken]]) {
      for (const form of encodings(secret!)) {
        assert.ok(!stdout.includes(form), `stdout holds the ${name} (${form})`);
        assert.ok(!stderrBesideBanner.includes(form), `stderr holds the ${name} (${form})`);
      }
    }
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("the KV file holds only hashes of the credential password and the admin token", async () => {
  const { relay, sink, adminToken, username, password } = await runScenario();
  try {
    assert.deepEqual((await relay.stop()).code, 0);
    const entries = await dumpKv(`${relay.dataDir}/postern.kv`);
    assert.ok(entries.some((e) => e.key[0] === "cred"), "the credential is stored");
    assert.ok(entries.some((e) => e.key[0] === "meta"), "the admin token's hash is stored");

    const latin1 = new TextDecoder("latin1");
    const dump = entries.map((entry) =>
      JSON.stringify(entry.key) + " " + JSON.stringify(
        entry.value,
        (_key, value) =>
          value instanceof Uint8Array
            ? latin1.decode(value)
            : typeof value === "bigint"
            ? String(value)
            : value,
      )
    ).join("\n");
    assert.ok(dump.includes(username), "the dump is readable (it names the credential)");
    const secretPart = randomPart(password);
    for (
      const [name, secret] of [
        ["password", password],
        ["password's random part", secretPart],
        ["admin token", adminToken],
      ]
    ) {
      for (const form of encodings(secret!)) {
        assert.ok(!dump.includes(form), `the KV file holds the ${name} in clear (${form})`);
      }
    }
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("GET /metrics holds no secret, no address and no account name, only bounded labels", async () => {
  const { relay, sink, adminToken, username, password } = await runScenario();
  try {
    // The scenario failed an AUTH with the admin token as password; add a near-miss API key.
    const wrong = await relay.api("/v1/credentials", { token: `${password}x` });
    assert.equal(wrong.status, 401);
    const res = await fetch(`http://127.0.0.1:${relay.httpPort}/metrics`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^postern_auth_failures_total\{protocol="smtp"\} [1-9]/m);
    const secretPart = randomPart(password);
    for (
      const [name, secret] of [["password", password], ["its random part", secretPart], [
        "admin token",
        adminToken,
      ]]
    ) {
      for (const form of encodings(secret!)) {
        assert.ok(!text.includes(form), `/metrics holds the ${name} (${form})`);
      }
    }
    assert.ok(!text.includes(username), "/metrics names a credential");
    assert.ok(!/@|127\.0\.0\.1|dest\.test|origin\.test/.test(text), "/metrics names an address");
    // Every label value is a word from a small vocabulary, never client-supplied text.
    for (const [, value] of text.matchAll(/="([^"]*)"/g)) {
      assert.match(value!, /^[a-z0-9_.+]+$|^\+Inf$/i, `label value ${value}`);
    }
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});
