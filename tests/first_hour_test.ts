/**
 * The first hour of a new user, end to end against the real relay: the start banner says where
 * the certificate is and what it covers, clients that verify it can trust it, the README's first
 * message arrives with no internet and harms nothing, certificates rotate without a restart, and
 * replies and logs say what to do next.
 */
import assert from "node:assert/strict";
import { type Relay, runCommand, startRelay } from "./support/relay_process.ts";
import { createCredential, queuedId, waitForStatus } from "./support/relay_api.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { certificateFor, fingerprintOf, presentedFingerprint } from "./support/tls_certificate.ts";

Deno.test("the start banner names the certificate file and what it covers: the hostname, localhost and 127.0.0.1", async () => {
  await using relay = await startRelay({ env: { POSTERN_HOSTNAME: "relay.test" } });
  const certPath = `${relay.dataDir}/dev-cert.pem`;
  const ready = await relay.waitForLog((line) => line.event === "ready");
  assert.equal(ready.tls_cert, certPath);
  for (const name of ["relay.test", "localhost", "127.0.0.1"]) {
    assert.ok((ready.tls_names as string[]).includes(name), JSON.stringify(ready));
  }
  const banner = await waitForText(relay, /TLS certificate:\s+(\S+)[^\n]*\n\s+covers ([^;]+);/);
  assert.equal(banner[1], certPath);
  assert.match(banner[2]!, /relay\.test, localhost, 127\.0\.0\.1/);
  // What the banner says is what a client gets.
  const pem = await Deno.readTextFile(certPath);
  assert.equal(await presentedFingerprint(relay.smtpPort, "starttls"), fingerprintOf(pem)); // The dashboard URL it prints leads somewhere: / goes to the dashboard.
  const root = await fetch(`http://127.0.0.1:${relay.httpPort}/`, { redirect: "manual" });
  await root.body?.cancel();
  assert.equal(root.status, 302);
  assert.match(root.headers.get("location") ?? "", /\/dashboard/);
});

Deno.test("the README's first message: a client that verifies the certificate sends to the simulator, it is delivered, and nothing is suppressed", async () => {
  await using relay = await startRelay();
  const credential = await createCredential(relay, "wordpress");
  const certPath = `${relay.dataDir}/dev-cert.pem`;
  // As the README says: swaks trusting the generated certificate, verification on.
  const swaks = await runCommand("swaks", [
    "--server",
    `127.0.0.1:${relay.smtpPort}`,
    "--tls",
    "--tls-verify",
    "--tls-ca-path",
    certPath,
    "--auth",
    "PLAIN",
    "--auth-user",
    credential.username,
    "--auth-password",
    credential.password,
    "--from",
    "app@example.com",
    "--to",
    "delivered@simulator.postern.invalid",
    "--timeout",
    "20",
  ]);
  assert.equal(swaks.code, 0, swaks.stdout + swaks.stderr);
  const id = queuedId(swaks.stdout.split("\n").find((l) => l.includes("queued as"))!);
  const message = await waitForStatus(relay, id, "delivered", 60_000);
  assert.match(message.recipients[0]!.last_reply ?? "", /^250 /);
  // Python's smtplib with an ssl context that trusts the file verifies the name 127.0.0.1 too.
  const python = await runCommand("python3", [
    "-c",
    [
      "import smtplib, ssl, sys",
      "ctx = ssl.create_default_context(cafile=sys.argv[1])",
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[2]), timeout=20)",
      "s.starttls(context=ctx)",
      "s.login(sys.argv[3], sys.argv[4])",
      "s.quit()",
    ].join("\n"),
    certPath,
    String(relay.smtpPort),
    credential.username,
    credential.password,
  ]);
  assert.equal(python.code, 0, python.stderr);
  const suppressions = await relay.api("/v1/suppressions");
  assert.equal(suppressions.status, 200);
  assert.deepEqual(suppressions.json.data, []);
});

async function waitForText(relay: Relay, pattern: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = pattern.exec(relay.stderr);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`no ${pattern} on stderr: ${relay.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function writePair(dir: string, pair: { cert: string; key: string }) {
  // As certbot does: new files beside the old, renamed into place.
  await Deno.writeTextFile(`${dir}/cert.pem.new`, pair.cert);
  await Deno.writeTextFile(`${dir}/key.pem.new`, pair.key);
  await Deno.rename(`${dir}/key.pem.new`, `${dir}/key.pem`);
  await Deno.rename(`${dir}/cert.pem.new`, `${dir}/cert.pem`);
}

async function relayWithCertificateFiles() {
  const dir = await Deno.makeTempDir({ prefix: "postern_test_certs_" });
  const first = await certificateFor(["relay.test", "localhost"]);
  await writePair(dir, first);
  const relay = await startRelay({
    env: { POSTERN_TLS_CERT: `${dir}/cert.pem`, POSTERN_TLS_KEY: `${dir}/key.pem` },
  });
  return {
    dir,
    relay,
    first,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const reloads = (relay: Relay, event: string) =>
  relay.logs.filter((line) => line.event === event).length;

Deno.test("after SIGHUP new STARTTLS and SMTPS sessions get the new certificate; a bad new pair keeps the old one and says why", async () => {
  await using setup = await relayWithCertificateFiles();
  const { relay, dir, first } = setup;
  assert.equal(await presentedFingerprint(relay.smtpPort, "starttls"), fingerprintOf(first.cert));

  const second = await certificateFor(["relay.test", "localhost"]);
  await writePair(dir, second);
  Deno.kill(relay.pid, "SIGHUP");
  await relay.waitForLog((line) =>
    line.event === "tls.reloaded" && (line.names as string[]).includes("relay.test")
  );
  assert.equal(await presentedFingerprint(relay.smtpPort, "starttls"), fingerprintOf(second.cert));
  assert.equal(await presentedFingerprint(relay.smtpsPort, "implicit"), fingerprintOf(second.cert));

  // A key that belongs to another certificate: refused, and the running pair stays.
  const stranger = await certificateFor(["stranger.test"]);
  const failedBefore = reloads(relay, "tls.reload_failed");
  await writePair(dir, { cert: stranger.cert, key: second.key });
  Deno.kill(relay.pid, "SIGHUP");
  const failed = await relay.waitForLog((line) =>
    line.event === "tls.reload_failed" && reloads(relay, "tls.reload_failed") > failedBefore
  );
  assert.match(String(failed.error), /POSTERN_TLS_KEY.*does not match/);
  assert.equal(await presentedFingerprint(relay.smtpPort, "starttls"), fingerprintOf(second.cert));
  // SIGHUP is not a stop: the relay still answers.
  assert.equal((await relay.api("/healthz")).status, 200);
});

Deno.test("certificate files replaced on disk are used by new sessions without a signal", async () => {
  await using setup = await relayWithCertificateFiles();
  const { relay, dir } = setup;
  const renewed = await certificateFor(["relay.test", "localhost", "renewed.test"]);
  await writePair(dir, renewed);
  await relay.waitForLog(
    (line) => line.event === "tls.reloaded" && (line.names as string[]).includes("renewed.test"),
    30_000,
  );
  assert.equal(await presentedFingerprint(relay.smtpPort, "starttls"), fingerprintOf(renewed.cert));
});

Deno.test("a failed TLS handshake is logged once, with the client's address", async () => {
  await using relay = await startRelay();
  // TLS 1.1 is refused: the handshake fails on both listeners.
  for (const args of [["-starttls", "smtp"], []]) {
    const port = args.length ? relay.smtpPort : relay.smtpsPort;
    await runCommand("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-tls1_1", ...args], {
      stdin: "",
      timeoutMs: 20_000,
    });
  }
  await relay.waitForLog((line) => line.event === "smtp.tls_failed" && line.listener === "smtps");
  await relay.waitForLog((line) =>
    line.event === "smtp.tls_failed" && line.listener === "submission"
  );
  // A session that follows (and so comes after any repeat) is logged; then count.
  const after = await SmtpClient.open(relay.smtpPort);
  await after.reply();
  await after.quit();
  const failures = relay.logs.filter((line) => line.event === "smtp.tls_failed");
  assert.equal(failures.length, 2, JSON.stringify(failures));
  for (const failure of failures) assert.equal(failure.client, "127.0.0.1");
  assert.ok(!relay.logs.some((line) => line.event === "smtp.error"), "no second, vaguer line");
});

Deno.test("the greeting says ESMTP once, and MAIL FROM before STARTTLS is told to start TLS first", async () => {
  await using relay = await startRelay();
  const client = await SmtpClient.open(relay.smtpPort);
  const greeting = await client.reply();
  assert.equal(greeting.code, 220);
  assert.equal(greeting.raw.match(/ESMTP/g)?.length, 1, greeting.raw);
  await client.command("EHLO client.test");
  const mail = await client.command("MAIL FROM:<app@example.com>");
  assert.equal(mail.code, 530, mail.raw);
  assert.match(mail.raw, /STARTTLS/);
  await client.quit();
});

Deno.test("a webhook URL at a private address is refused with a 400 that names POSTERN_WEBHOOK_ALLOW", async () => {
  await using relay = await startRelay();
  const res = await relay.api("/v1/webhooks", {
    body: { url: "http://127.0.0.1:9/hook", events: ["delivered"] },
  });
  assert.equal(res.status, 400, JSON.stringify(res.json));
  assert.match(res.json.error.message, /POSTERN_WEBHOOK_ALLOW/);
});
