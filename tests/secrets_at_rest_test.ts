/**
 * Secrets at rest and in the log, as an attacker holding a copy of the data directory or the
 * log would look for them: webhook signing secrets and DKIM private keys are in the KV file only
 * sealed under a key kept outside it, a deleted webhook's secret is gone from the file, the files
 * are readable by the server's user alone, and an API key typed as an SMTP username is never
 * logged.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createPublicKey } from "node:crypto";
import { freePort, type Relay, startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { startWebhookReceiver } from "./support/webhook_receiver.ts";
import { dumpKv } from "./support/operations.ts";
import { SecretBox } from "../core/auth/secret_box.ts";
import { login } from "./support/tenants.ts";

const latin1 = new TextDecoder("latin1");

/** Every byte of the KV file and its WAL, as text to search (free pages included). */
async function kvBytes(relay: Relay): Promise<string> {
  let text = "";
  for (const suffix of ["", "-wal"]) {
    try {
      text += latin1.decode(await Deno.readFile(`${relay.dataDir}/postern.kv${suffix}`));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return text;
}

/** What sqlite3 itself reads from the file: every row of every table, as hex and as text. */
async function sqliteDump(path: string): Promise<string> {
  const out = await new Deno.Command("sqlite3", { args: [path, ".dump"] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** The ways a secret could sit in a file: as is, base64'd, hex'd, and its key bytes alone. */
function forms(secret: string): string[] {
  const out = [secret, btoa(secret), Buffer.from(secret).toString("hex").toUpperCase()];
  if (secret.startsWith("whsec_")) out.push(secret.slice(6));
  return out;
}

function mode(info: Deno.FileInfo): string {
  return (info.mode! & 0o777).toString(8);
}

Deno.test("webhook secrets and DKIM private keys are in the KV file only sealed; the data dir is 0700 and the KV files 0600", async () => {
  // An install from before: a data dir anyone may read, with an (empty) KV file to match.
  const dataDir = await Deno.makeTempDir({ prefix: "postern_secrets_" });
  await Deno.chmod(dataDir, 0o755);
  await Deno.writeFile(`${dataDir}/postern.kv`, new Uint8Array(0), { mode: 0o644 });
  await Deno.chmod(`${dataDir}/postern.kv`, 0o644);
  const sink = await startSink();
  const relay = await startRelay({
    dataDir,
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
      POSTERN_BOUNCE_DOMAIN: "bounces.relay.test",
      POSTERN_INBOUND_PORT: String(await freePort()),
    },
  });
  try {
    const hook = await relay.api("/v1/webhooks", {
      body: { url: "http://127.0.0.1:9/hook", events: ["delivered"] },
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.json));
    const rotated = await relay.api(`/v1/webhooks/${hook.json.id}/rotate`, { body: {} });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
    const domain = await relay.api("/v1/domains", {
      body: { name: "example.test", dkim: { algorithms: ["rsa"] } },
    });
    assert.equal(domain.status, 201, JSON.stringify(domain.json));

    assert.equal(mode(await Deno.stat(dataDir)), "700", "the data directory");
    for (const name of ["postern.kv", "postern.kv-wal", "postern.kv-shm", "secret.key"]) {
      assert.equal(mode(await Deno.stat(`${dataDir}/${name}`)), "600", name);
    }
    assert.equal((await relay.stop()).code, 0);

    // The records are there, sealed; the key file opens them to the very keys in use.
    const box = await SecretBox.fromMaterial(
      new TextEncoder().encode((await Deno.readTextFile(`${dataDir}/secret.key`)).trim()),
    );
    const entries = await dumpKv(`${dataDir}/postern.kv`);
    const endpoint = entries.find((e) => e.key[0] === "webhook" && e.key[1] === hook.json.id)!
      .value as { secrets: { secret: string }[] };
    assert.equal(endpoint.secrets.length, 2);
    const opened = await Promise.all(
      endpoint.secrets.map((s) => box.open(s.secret, `webhook:${hook.json.id}`)),
    );
    assert.deepEqual(opened, [hook.json.secret, rotated.json.secret]);
    const stored = entries.find((e) => e.key[0] === "domain" && e.key[1] === domain.json.id)!
      .value as { keys: { selector: string; publicKey: string; privateKey: string }[] };
    const key = stored.keys[0]!;
    assert.match(key.privateKey, /^enc1:/);
    const pem = await box.open(key.privateKey, `dkim:${domain.json.id}:${key.selector}`);
    assert.equal(
      createPublicKey(pem).export({ type: "spki", format: "der" }).toString("base64"),
      key.publicKey,
      "the sealed key is the domain's DKIM key",
    );

    const verpKey = entries.find((e) => e.key[0] === "meta" && e.key[1] === "verp_key")!
      .value as { key: string };
    assert.match(verpKey.key, /^enc1:/, "the VERP MAC key is sealed too");

    const bytes = await kvBytes(relay);
    const dump = await sqliteDump(`${dataDir}/postern.kv`);
    const pemBody = pem.split("\n").filter((l) => l && !l.startsWith("-----"));
    for (
      const [what, secret] of [
        ["first webhook secret", hook.json.secret],
        ["rotated webhook secret", rotated.json.secret],
        ["DKIM private key PEM", pem],
        ["DKIM private key's first base64 line", pemBody[0]!],
        ["DKIM private key's middle base64 line", pemBody[10]!],
        ["VERP MAC key", await box.open(verpKey.key, "verp_key")],
      ]
    ) {
      for (const form of forms(secret)) {
        assert.ok(!bytes.includes(form), `the KV file's bytes hold the ${what} (${form})`);
        assert.ok(!dump.includes(form), `sqlite3 reads the ${what} from the KV file (${form})`);
      }
    }
    assert.ok(!bytes.includes("PRIVATE KEY"), "a PEM private key in the KV file");
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a deleted webhook's secret is overwritten: sqlite3 reads neither it nor its sealed form, and a VACUUM leaves no trace", async () => {
  const sink = await startSink();
  let relay = await startRelay({
    env: { POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`, POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8" },
  });
  try {
    const hook = await relay.api("/v1/webhooks", {
      body: { url: "http://127.0.0.1:9/hook", events: ["delivered"] },
    });
    assert.equal(hook.status, 201);
    assert.equal((await relay.stop()).code, 0);
    const entry = (await dumpKv(`${relay.dataDir}/postern.kv`)).find((e) =>
      e.key[0] === "webhook" && e.key[1] === hook.json.id
    )!;
    const sealed = (entry.value as { secrets: { secret: string }[] }).secrets[0]!.secret;
    assert.ok((await kvBytes(relay)).includes(sealed), "the sealed secret is in the file first");

    relay = await relay.restart();
    const deleted = await relay.api(`/v1/webhooks/${hook.json.id}`, { method: "DELETE" });
    assert.ok(deleted.status < 300, JSON.stringify(deleted.json));
    assert.equal((await relay.stop()).code, 0);

    const path = `${relay.dataDir}/postern.kv`;
    const dump = await sqliteDump(path);
    const before = await kvBytes(relay);
    for (const form of forms(hook.json.secret)) {
      assert.ok(!before.includes(form), `the deleted secret is in the file in clear (${form})`);
    }
    for (const form of [...forms(hook.json.secret), sealed]) {
      assert.ok(!dump.includes(form), `sqlite3 still reads the deleted secret (${form})`);
    }
    // SQLite may keep stale copies of a moved record in free space (sealed: useless without the
    // key); the VACUUM the README describes for an operator who wants them gone removes them.
    const vacuum = await new Deno.Command("sqlite3", { args: [path, "VACUUM"] }).output();
    assert.equal(vacuum.code, 0, new TextDecoder().decode(vacuum.stderr));
    const bytes = await kvBytes(relay);
    for (const form of [...forms(hook.json.secret), sealed, sealed.slice(-40)]) {
      assert.ok(!bytes.includes(form), `after VACUUM the file still holds (${form})`);
    }
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("a webhook secret stored in clear by an older version is sealed at start and still signs", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  let relay = await startRelay({
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_EVENT_SETTLE: "200ms",
      POSTERN_SECRET_KEY: "an operator's own key, at least 32 characters long",
    },
  });
  try {
    const hook = await relay.api("/v1/webhooks", {
      body: { url: receiver.url, events: ["accepted"] },
    });
    assert.equal(hook.status, 201);
    receiver.secrets.push(hook.json.secret);
    assert.equal((await relay.stop()).code, 0);
    await Deno.stat(`${relay.dataDir}/secret.key`).then(
      () => assert.fail("no key file is written when POSTERN_SECRET_KEY is set"),
      (err) => assert.ok(err instanceof Deno.errors.NotFound),
    );
    // Rewrite the record as an older version stored it: the secret as issued.
    const kv = await Deno.openKv(`${relay.dataDir}/postern.kv`);
    try {
      const entry = await kv.get<{ secrets: { secret: string }[] }>(["webhook", hook.json.id]);
      const secrets = entry.value!.secrets.map((s) => ({ ...s, secret: hook.json.secret }));
      await kv.set(entry.key, { ...entry.value, secrets });
    } finally {
      kv.close();
    }

    relay = await relay.restart();
    await relay.waitForLog((l) => l.event === "secrets.sealed" && l.count === 1);
    const sent = await relay.api("/v1/messages", {
      body: { from: "app@origin.test", to: "user@dest.test", subject: "hi", text: "Hello." },
    });
    assert.equal(sent.status, 202);
    await receiver.waitFor(() => receiver.accepted.length === 1, "the signed accepted event");
    const stored = (await relay.api(`/v1/webhooks/${hook.json.id}`)).json;
    assert.equal(stored.secrets.length, 1, "the secret is still listed (without its value)");
    assert.equal((await relay.stop()).code, 0);
    const entry = (await dumpKv(`${relay.dataDir}/postern.kv`)).find((e) =>
      e.key[0] === "webhook" && e.key[1] === hook.json.id
    )!;
    assert.match((entry.value as { secrets: { secret: string }[] }).secrets[0]!.secret, /^enc1:/);
  } finally {
    await relay[Symbol.asyncDispose]();
    await receiver.close();
    await sink.close();
  }
});

Deno.test("an API key typed as the SMTP AUTH username is never logged: the log names its credential", async () => {
  const relay = await startRelay({
    env: { POSTERN_AUTH_FAILURE_LIMIT: "3", POSTERN_AUTH_FAILURE_DELAY: "10ms" },
  });
  try {
    const created = await relay.api("/v1/credentials", { body: { name: "app" } });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const { username, password: key } = created.json as { username: string; password: string };
    assert.match(key, /^pst_/);
    const secretPart = key.slice("pst_".length + 16 + 1);
    // The key as username, over PLAIN, LOGIN and XOAUTH2, each in its own TLS session.
    for (const mechanism of ["PLAIN", "LOGIN", "XOAUTH2"] as const) {
      const password = mechanism === "PLAIN" ? key : "guess";
      const { client, reply } = await login(relay, key, password, mechanism);
      assert.equal(reply.code, 535, `${mechanism}: ${reply.raw}`);
      await client.quit();
    }
    // The limit is reached: the next try is refused unheard.
    const { client, reply } = await login(relay, key, "again");
    assert.match(reply.raw, /^4[25]\d /, "locked out");
    await client.quit();

    const lines = relay.logs.filter((l) =>
      l.event === "smtp.auth_failed" || l.event === "smtp.auth_locked"
    );
    assert.ok(lines.some((l) => l.event === "smtp.auth_failed"), "the failures are logged");
    for (const line of lines) assert.equal(line.credential, username, JSON.stringify(line));
    const stdout = relay.logs.map((l) => JSON.stringify(l)).join("\n");
    for (const form of [...forms(key), secretPart, btoa(`\0${key}\0${key}`)]) {
      assert.ok(!stdout.includes(form), `the log holds the key (${form})`);
      assert.ok(!relay.stderr.includes(form), `stderr holds the key (${form})`);
    }
  } finally {
    await relay[Symbol.asyncDispose]();
  }
});
