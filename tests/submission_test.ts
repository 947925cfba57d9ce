/**
 * End to end: mail clients submit to the real relay process (STARTTLS on the submission port,
 * implicit TLS on the SMTPS port), the relay delivers to a scripted sink over loopback, and the
 * HTTP API reports what happened. Covers authentication, size limits and trusted networks.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { type Relay, runCommand, startRelay } from "./support/relay_process.ts";
import { type ReceivedMessage, type Sink, startSink } from "./support/sink.ts";
import { SmtpClient, type SmtpReply } from "./support/smtp_client.ts";
import {
  createCredential,
  devCertificate,
  type NewCredential,
  queuedId,
  waitForStatus,
} from "./support/relay_api.ts";

const QUEUED = /^250 2\.0\.0 OK queued as [0-9A-Z]{26}$/;

/** A sink, and a relay that routes every domain to it. */
async function startRelayAndSink(
  env: Record<string, string> = {},
): Promise<{ relay: Relay; sink: Sink; [Symbol.asyncDispose](): Promise<void> }> {
  const sink = await startSink();
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

function transport(
  relay: Relay,
  mode: "starttls" | "smtps",
  credential: NewCredential | null,
  authMethod: "PLAIN" | "LOGIN" = "PLAIN",
  /** Receives every command nodemailer sends, so a test can see the AUTH mechanism used. */
  commands: string[] = [],
) {
  const record = (entry: { tnx?: string }, message: unknown) => {
    if (entry?.tnx === "client") commands.push(String(message));
  };
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port: mode === "smtps" ? relay.smtpsPort : relay.smtpPort,
    secure: mode === "smtps",
    requireTLS: mode === "starttls",
    name: "wordpress.client.test",
    ...(credential ? { auth: { user: credential.username, pass: credential.password } } : {}),
    authMethod,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 30_000,
    transactionLog: true,
    logger: {
      level() {},
      trace: record,
      debug: record,
      info: record,
      warn: record,
      error: record,
      fatal: record,
    },
  });
}

// --- a little MIME reading, enough to check what arrived -------------------------------------

/** Header fields of a header block, unfolded, by lower-case name. */
function headerFields(block: string): { name: string; value: string }[] {
  const fields: { name: string; value: string }[] = [];
  for (const line of block.split("\r\n")) {
    if (/^[ \t]/.test(line) && fields.length > 0) {
      fields[fields.length - 1]!.value += " " + line.trim();
    } else if (line.includes(":")) {
      const colon = line.indexOf(":");
      fields.push({
        name: line.slice(0, colon).toLowerCase(),
        value: line.slice(colon + 1).trim(),
      });
    }
  }
  return fields;
}

function header(block: string, name: string): string | undefined {
  return headerFields(block).find((f) => f.name === name)?.value;
}

/** RFC 2047 encoded words in UTF-8, as nodemailer writes them. */
function decodeWords(value: string): string {
  return value.replace(/\?=\s+=\?/g, "?==?").replace(
    /=\?utf-8\?([bq])\?([^?]*)\?=/gi,
    (_, encoding: string, text: string) => {
      if (encoding.toLowerCase() === "b") return new TextDecoder().decode(base64Bytes(text));
      const bytes: number[] = [];
      for (let i = 0; i < text.length; i++) {
        if (text[i] === "_") bytes.push(0x20);
        else if (text[i] === "=") {
          bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
          i += 2;
        } else bytes.push(text.charCodeAt(i));
      }
      return new TextDecoder().decode(new Uint8Array(bytes));
    },
  );
}

function base64Bytes(text: string): Uint8Array {
  return Uint8Array.from(atob(text.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

/** The parts of a multipart message: each part's header block and decoded content. */
function mimeParts(text: string): { headers: string; content: Uint8Array }[] {
  const split = text.indexOf("\r\n\r\n");
  const contentType = header(text.slice(0, split), "content-type") ?? "";
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  assert.ok(boundary, `expected a multipart message, got Content-Type ${contentType}`);
  const body = text.slice(split + 4);
  const sections = body.split(`--${boundary}`).slice(1, -1);
  return sections.map((section) => {
    const part = section.replace(/^\r\n/, "");
    const end = part.indexOf("\r\n\r\n");
    const headers = part.slice(0, end);
    const raw = part.slice(end + 4);
    const encoding = (header(headers, "content-transfer-encoding") ?? "7bit").toLowerCase();
    const content = encoding === "base64"
      ? base64Bytes(raw)
      : new TextEncoder().encode(raw.replace(/\r\n$/, ""));
    return { headers, content };
  });
}

const UTF8_TEXT = "Grüße aus Zürich — naïve café, 日本語, 📨\nSecond line, still UTF-8: ½ ± €.\n";
const ATTACHMENT = Uint8Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) % 256);

/** Sends the reference message with nodemailer and returns the relay's reply. */
async function sendReference(
  relay: Relay,
  mode: "starttls" | "smtps",
  credential: NewCredential,
  authMethod: "PLAIN" | "LOGIN",
  to: string,
): Promise<string> {
  const commands: string[] = [];
  const transporter = transport(relay, mode, credential, authMethod, commands);
  try {
    const info = await transporter.sendMail({
      from: '"WordPress" <wordpress@site.test>',
      to,
      subject: `Grüße über ${mode} — Ärger? Nein!`,
      text: UTF8_TEXT,
      textEncoding: "base64",
      attachments: [{
        filename: "report.bin",
        content: Buffer.from(ATTACHMENT),
        contentType: "application/octet-stream",
      }],
    });
    assert.ok(
      commands.some((command) => command.startsWith(`AUTH ${authMethod}`)),
      `nodemailer logged in with AUTH ${authMethod}: ${commands.join(" | ")}`,
    );
    if (mode === "starttls") assert.ok(commands.includes("STARTTLS"), commands.join(" | "));
    return String(info.response);
  } finally {
    transporter.close();
  }
}

/** Everything a user checks in the message the sink received from the reference send. */
function assertReferenceArrived(received: ReceivedMessage, mode: string, to: string) {
  assert.deepEqual(received.to, [to]);
  assert.equal(received.from, "wordpress@site.test");
  const fields = headerFields(received.headers);
  assert.equal(fields[0]?.name, "received", "the relay's Received header comes first");
  assert.match(fields[0]!.value, /^from wordpress\.client\.test \(\[127\.0\.0\.1\]\)/);
  assert.match(fields[0]!.value, /\bby relay\.test\b/);
  assert.match(fields[0]!.value, /\bwith ESMTPSA\b/, "an authenticated TLS submission");
  assert.equal(
    decodeWords(header(received.headers, "subject")!),
    `Grüße über ${mode} — Ärger? Nein!`,
  );
  assert.equal(header(received.headers, "from"), "WordPress <wordpress@site.test>");
  assert.equal(header(received.headers, "to"), to);
  assert.ok(header(received.headers, "message-id"));
  assert.ok(header(received.headers, "date"));
  assert.ok(!received.text.includes("\r\n\r\n\r\n\r\n"), "no stray blank lines were added");

  const parts = mimeParts(received.text);
  assert.equal(parts.length, 2);
  const [text, file] = parts as [(typeof parts)[0], (typeof parts)[0]];
  assert.match(header(text.headers, "content-type")!, /^text\/plain; charset=utf-8/i);
  assert.equal(new TextDecoder().decode(text.content).replaceAll("\r\n", "\n"), UTF8_TEXT);
  assert.match(header(file.headers, "content-disposition")!, /attachment; filename=report\.bin/);
  assert.deepEqual(file.content, ATTACHMENT);
}

async function assertDeliveredWithEvents(relay: Relay, id: string, sinkReply: RegExp) {
  const view = await waitForStatus(relay, id, "delivered");
  assert.equal(view.recipients.length, 1);
  assert.equal(view.recipients[0]!.status, "delivered");
  const types = view.events.map((e) => e.type);
  assert.deepEqual(types, ["accepted", "delivered"]);
  const delivered = view.events[1]!;
  assert.match(delivered.reply ?? "", sinkReply);
  assert.equal(delivered.recipient, view.recipients[0]!.address);
}

Deno.test("nodemailer submits over STARTTLS with AUTH PLAIN, and the message arrives intact and is shown delivered", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const credential = await createCredential(relay, "wordpress");

  const reply = await sendReference(relay, "starttls", credential, "PLAIN", "alice@dest.test");
  assert.match(reply, QUEUED);

  const [received] = await sink.waitFor(1);
  assertReferenceArrived(received!, "starttls", "alice@dest.test");
  assert.match(received!.headers, new RegExp(`id ${queuedId(reply)}\\b`));
  // The sink (smtp-server) answers "250 OK: message queued" after DATA.
  await assertDeliveredWithEvents(relay, queuedId(reply), /^250 OK: message queued$/);
});

Deno.test("nodemailer submits over implicit TLS on the SMTPS port with AUTH LOGIN, and the message arrives intact", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const credential = await createCredential(relay, "wordpress");

  const reply = await sendReference(relay, "smtps", credential, "LOGIN", "bob@dest.test");
  assert.match(reply, QUEUED);

  const [received] = await sink.waitFor(1);
  assertReferenceArrived(received!, "smtps", "bob@dest.test");
  await assertDeliveredWithEvents(relay, queuedId(reply), /^250 OK: message queued$/);
});

Deno.test("swaks submits with STARTTLS and AUTH PLAIN, and with implicit TLS and AUTH LOGIN", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const credential = await createCredential(relay, "swaks");

  const runs = [
    { flag: "--tls", port: relay.smtpPort, auth: "PLAIN", to: "carol@dest.test" },
    { flag: "--tlsc", port: relay.smtpsPort, auth: "LOGIN", to: "dave@dest.test" },
  ];
  const ids: string[] = [];
  for (const run of runs) {
    const result = await runCommand("swaks", [
      "--server",
      "127.0.0.1",
      "--port",
      String(run.port),
      run.flag,
      "--auth",
      run.auth,
      "--auth-user",
      credential.username,
      "--auth-password",
      credential.password,
      "--helo",
      "swaks.client.test",
      "--from",
      "ops@site.test",
      "--to",
      run.to,
      "--header",
      `Subject: swaks ${run.flag} ${run.auth}`,
      "--body",
      `Sent by swaks ${run.flag}.`,
      "--timeout",
      "20",
    ]);
    assert.equal(result.code, 0, `swaks ${run.flag} failed:\n${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, new RegExp(`~> AUTH ${run.auth}\\b`), "sent encrypted");
    const replyLine = result.stdout.split("\n").find((line) => line.includes("queued as"));
    assert.ok(replyLine, `swaks ${run.flag} saw no queued reply:\n${result.stdout}`);
    assert.match(replyLine.replace(/^\s*<[-~]\s+/, ""), QUEUED);
    ids.push(queuedId(replyLine));
  }

  const messages = await sink.waitFor(2);
  for (const run of runs) {
    const received = messages.find((m) => m.to[0] === run.to);
    assert.ok(received, `the message to ${run.to} arrived`);
    assert.equal(header(received.headers, "subject"), `swaks ${run.flag} ${run.auth}`);
    assert.match(received.text, new RegExp(`\r\n\r\nSent by swaks ${run.flag}\\.`));
    assert.match(header(received.headers, "received")!, /by relay\.test .* with ESMTPSA/);
  }
  for (const id of ids) await waitForStatus(relay, id, "delivered");
});

Deno.test("Python smtplib submits with starttls and login, and the message arrives", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const credential = await createCredential(relay, "python-app");
  const script = `
import json, os, smtplib, ssl
from email.message import EmailMessage

# Verifies the relay's certificate for real: trust its dev certificate, check the IP SAN.
context = ssl.create_default_context(cafile=os.environ["RELAY_CA"])
msg = EmailMessage()
msg["From"] = "Billing <billing@site.test>"
msg["To"] = "erin@dest.test"
msg["Subject"] = "Invoice from Python"
msg.set_content("Hello from smtplib. Ünïcödé too.")
with smtplib.SMTP("127.0.0.1", int(os.environ["RELAY_PORT"]), local_hostname="python.client.test", timeout=20) as smtp:
    smtp.starttls(context=context)
    smtp.login(os.environ["RELAY_USER"], os.environ["RELAY_PASS"])
    code, _ = smtp.mail("billing@site.test")
    assert code == 250, code
    code, _ = smtp.rcpt("erin@dest.test")
    assert code == 250, code
    code, reply = smtp.data(msg.as_bytes().replace(b"\\n", b"\\r\\n"))
    print(json.dumps({"code": code, "reply": reply.decode()}))
`;
  const result = await runCommand("python3", ["-c", script], {
    env: {
      RELAY_CA: `${relay.dataDir}/dev-cert.pem`,
      RELAY_PORT: String(relay.smtpPort),
      RELAY_USER: credential.username,
      RELAY_PASS: credential.password,
    },
  });
  assert.equal(result.code, 0, `python3 failed:\n${result.stdout}\n${result.stderr}`);
  const { code, reply } = JSON.parse(result.stdout.trim());
  assert.match(`${code} ${reply}`, QUEUED);

  const [received] = await sink.waitFor(1);
  assert.deepEqual(received!.to, ["erin@dest.test"]);
  assert.equal(header(received!.headers, "subject"), "Invoice from Python");
  assert.match(
    header(received!.headers, "received")!,
    /^from python\.client\.test .*by relay\.test/,
  );
  await waitForStatus(relay, queuedId(reply), "delivered");
});

function keywords(reply: SmtpReply): string[] {
  return reply.lines.slice(1);
}

Deno.test("EHLO advertises the submission extensions, and AUTH only once TLS is up", async () => {
  await using relay = await startRelay();
  const ca = await devCertificate(relay);
  const { client, greeting } = await SmtpClient.connect({ port: relay.smtpPort });
  try {
    assert.equal(greeting.code, 220);
    assert.match(greeting.lines[0]!, /^relay\.test /);

    const before = await client.command("EHLO client.test");
    assert.equal(before.code, 250);
    const plain = keywords(before);
    for (
      const keyword of [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
      ]
    ) {
      assert.ok(plain.includes(keyword), `${keyword} is advertised before TLS: ${before.raw}`);
    }
    assert.ok(!plain.some((k) => k.startsWith("AUTH")), `no AUTH before TLS: ${before.raw}`);

    assert.equal((await client.startTls({ caCert: ca })).code, 220);
    const after = await client.command("EHLO client.test");
    assert.equal(after.code, 250);
    const auth = keywords(after).find((k) => k.startsWith("AUTH "));
    assert.ok(auth, `AUTH is advertised after STARTTLS: ${after.raw}`);
    assert.match(auth, /^AUTH PLAIN LOGIN( XOAUTH2)?$/);
    assert.ok(!keywords(after).includes("STARTTLS"), "STARTTLS is not offered twice");
    assert.ok(keywords(after).includes("SIZE 52428800"));
  } finally {
    await client.quit();
  }

  // Implicit TLS: AUTH from the first EHLO.
  const smtps = await SmtpClient.connect({ port: relay.smtpsPort, implicitTls: { caCert: ca } });
  try {
    const ehlo = await smtps.client.command("EHLO client.test");
    assert.ok(keywords(ehlo).some((k) => /^AUTH PLAIN LOGIN/.test(k)), ehlo.raw);
    assert.ok(!keywords(ehlo).includes("STARTTLS"));
  } finally {
    await smtps.client.quit();
  }
});

function authPlain(user: string, pass: string): string {
  return btoa(`\0${user}\0${pass}`);
}

Deno.test("AUTH before TLS is refused with 538 5.7.11 and MAIL FROM before AUTH with 530 5.7.0", async () => {
  // No POSTERN_TRUSTED_NETWORKS: loopback is an untrusted address like any other.
  await using relay = await startRelay();
  const credential = await createCredential(relay);
  const ca = await devCertificate(relay);
  const { client } = await SmtpClient.connect({ port: relay.smtpPort });
  try {
    await client.command("EHLO client.test");
    const auth = await client.command(
      `AUTH PLAIN ${authPlain(credential.username, credential.password)}`,
    );
    assert.equal(auth.code, 538);
    assert.match(auth.lines[0]!, /^5\.7\.11 /);

    const mail = await client.command("MAIL FROM:<wordpress@site.test>");
    assert.equal(mail.code, 530);
    assert.match(mail.lines[0]!, /^5\.7\.0 /);

    // Still refused once the session is encrypted but not authenticated.
    await client.startTls({ caCert: ca });
    await client.command("EHLO client.test");
    const afterTls = await client.command("MAIL FROM:<wordpress@site.test>");
    assert.equal(afterTls.code, 530);
    assert.match(afterTls.lines[0]!, /^5\.7\.0 /);
  } finally {
    await client.quit();
  }
});

Deno.test("a wrong password is refused with 535 5.7.8, over the raw protocol and through nodemailer", async () => {
  await using relay = await startRelay();
  const credential = await createCredential(relay);
  const ca = await devCertificate(relay);
  const { client } = await SmtpClient.connect({ port: relay.smtpPort });
  try {
    await client.command("EHLO client.test");
    await client.startTls({ caCert: ca });
    await client.command("EHLO client.test");
    const wrong = await client.command(`AUTH PLAIN ${authPlain(credential.username, "not-it")}`);
    assert.equal(wrong.code, 535);
    assert.match(wrong.lines[0]!, /^5\.7\.8 /);
    const unknown = await client.command(
      `AUTH PLAIN ${authPlain("cr_nobody", credential.password)}`,
    );
    assert.equal(unknown.code, 535);
    assert.match(unknown.lines[0]!, /^5\.7\.8 /);
    const mail = await client.command("MAIL FROM:<wordpress@site.test>");
    assert.equal(mail.code, 530, "a failed AUTH leaves the session unauthenticated");
  } finally {
    await client.quit();
  }

  const transporter = transport(relay, "starttls", { ...credential, password: "wrong" }, "LOGIN");
  try {
    await assert.rejects(
      transporter.sendMail({ from: "a@site.test", to: "b@dest.test", text: "x" }),
      (error: { responseCode?: number; response?: string }) => {
        assert.equal(error.responseCode, 535);
        assert.match(error.response ?? "", /^535 5\.7\.8 /);
        return true;
      },
    );
  } finally {
    transporter.close();
  }
});

Deno.test("an oversize message is refused with 552 5.3.4 and nothing is queued", async () => {
  await using env = await startRelayAndSink({ POSTERN_MAX_MESSAGE_SIZE: "100000" });
  const { relay, sink } = env;
  const credential = await createCredential(relay);
  const transporter = transport(relay, "starttls", credential);
  try {
    // Announced too large in MAIL FROM SIZE=: refused before any data is sent.
    const ca = await devCertificate(relay);
    const { client } = await SmtpClient.connect({ port: relay.smtpPort });
    try {
      const ehlo = await client.command("EHLO client.test");
      assert.ok(keywords(ehlo).includes("SIZE 100000"), ehlo.raw);
      await client.startTls({ caCert: ca });
      await client.command("EHLO client.test");
      const auth = await client.command(
        `AUTH PLAIN ${authPlain(credential.username, credential.password)}`,
      );
      assert.equal(auth.code, 235);
      const mail = await client.command("MAIL FROM:<wordpress@site.test> SIZE=200000");
      assert.equal(mail.code, 552, mail.raw);
      assert.match(mail.lines[0]!, /^5\.3\.4 /);
    } finally {
      await client.quit();
    }

    // Not announced (nodemailer sends no SIZE= for a stream it has not measured): refused at
    // the end of DATA.
    const big = "x".repeat(76) + "\r\n";
    await assert.rejects(
      transporter.sendMail({
        envelope: { from: "wordpress@site.test", to: ["big@dest.test"] },
        raw: "Subject: too big\r\n\r\n" + big.repeat(Math.ceil(200_000 / big.length)),
      }),
      (error: { responseCode?: number; response?: string }) => {
        assert.equal(error.responseCode, 552, String(error.response));
        assert.match(error.response ?? "", /^552 5\.3\.4 /);
        return true;
      },
    );

    // The same session rules still let a message under the limit through.
    const info = await transporter.sendMail({
      from: "wordpress@site.test",
      to: "small@dest.test",
      subject: "small",
      text: "fits",
    });
    assert.match(String(info.response), QUEUED);
    const [received] = await sink.waitFor(1);
    assert.deepEqual(received!.to, ["small@dest.test"]);
    await waitForStatus(relay, queuedId(String(info.response)), "delivered");
  } finally {
    transporter.close();
  }
  const accepted = relay.logs.filter((line) => line.event === "smtp.accepted");
  assert.equal(accepted.length, 1, "only the small message was queued");
  assert.ok(
    relay.logs.some((line) => line.event === "smtp.rejected" && line.reason === "too_large"),
  );
  assert.equal(sink.messages.length, 1);
  assert.ok(!sink.attempts.has("big@dest.test"), "the oversize message was never delivered");
});

Deno.test("a trusted network relays without AUTH", async () => {
  await using env = await startRelayAndSink({ POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8" });
  const { relay, sink } = env;
  const { client } = await SmtpClient.connect({ port: relay.smtpPort });
  let reply: SmtpReply;
  try {
    await client.command("EHLO printer.lan");
    assert.equal((await client.command("MAIL FROM:<scanner@site.test>")).code, 250);
    assert.equal((await client.command("RCPT TO:<frank@dest.test>")).code, 250);
    assert.equal((await client.command("DATA")).code, 354);
    await client.write(new TextEncoder().encode("Subject: scan\r\n\r\nScanned page.\r\n.\r\n"));
    reply = await client.reply();
  } finally {
    await client.quit();
  }
  assert.match(reply.raw, QUEUED);
  const [received] = await sink.waitFor(1);
  assert.equal(header(received!.headers, "subject"), "scan");
  assert.match(header(received!.headers, "received")!, /^from printer\.lan .* with ESMTP id/);
  const view = await waitForStatus(relay, queuedId(reply.raw), "delivered");
  assert.equal(view.recipients[0]!.address, "frank@dest.test");
});

Deno.test("without a trusted network an unauthenticated client can never relay", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const ca = await devCertificate(relay);

  const sessions: { name: string; open: () => Promise<SmtpClient> }[] = [
    {
      name: "plain submission",
      open: async () => {
        const { client } = await SmtpClient.connect({ port: relay.smtpPort });
        await client.command("EHLO client.test");
        return client;
      },
    },
    {
      name: "submission after STARTTLS",
      open: async () => {
        const { client } = await SmtpClient.connect({ port: relay.smtpPort });
        await client.command("EHLO client.test");
        await client.startTls({ caCert: ca });
        await client.command("EHLO client.test");
        return client;
      },
    },
    {
      name: "SMTPS",
      open: async () => {
        const { client } = await SmtpClient.connect({
          port: relay.smtpsPort,
          implicitTls: { caCert: ca },
        });
        await client.command("EHLO client.test");
        return client;
      },
    },
    {
      name: "HELO instead of EHLO",
      open: async () => {
        const { client } = await SmtpClient.connect({ port: relay.smtpPort });
        await client.command("HELO client.test");
        return client;
      },
    },
  ];
  for (const session of sessions) {
    const client = await session.open();
    try {
      const mail = await client.command("MAIL FROM:<spammer@site.test>");
      assert.equal(mail.code, 530, `${session.name}: ${mail.raw}`);
      const rcpt = await client.command("RCPT TO:<victim@dest.test>");
      assert.ok(rcpt.code >= 500, `${session.name}: RCPT is refused: ${rcpt.raw}`);
      const data = await client.command("DATA");
      assert.ok(data.code >= 500, `${session.name}: DATA is refused: ${data.raw}`);
      const nullSender = await client.command("MAIL FROM:<>");
      assert.equal(nullSender.code, 530, `${session.name}: even for bounces: ${nullSender.raw}`);
    } finally {
      await client.quit();
    }
  }

  const transporter = transport(relay, "starttls", null);
  try {
    await assert.rejects(
      transporter.sendMail({ from: "spammer@site.test", to: "victim@dest.test", text: "spam" }),
      (error: { responseCode?: number }) => {
        assert.equal(error.responseCode, 530);
        return true;
      },
    );
  } finally {
    transporter.close();
  }
  assert.equal(relay.logs.filter((line) => line.event === "smtp.accepted").length, 0);
  assert.equal(sink.connections, 0, "the relay never tried to deliver anything");
});

Deno.test("a revoked credential fails AUTH at once, and an open session fails its next MAIL FROM", async () => {
  await using env = await startRelayAndSink();
  const { relay, sink } = env;
  const credential = await createCredential(relay, "old-app");
  const ca = await devCertificate(relay);

  const { client } = await SmtpClient.connect({ port: relay.smtpPort });
  try {
    await client.command("EHLO client.test");
    await client.startTls({ caCert: ca });
    await client.command("EHLO client.test");
    const auth = await client.command(
      `AUTH PLAIN ${authPlain(credential.username, credential.password)}`,
    );
    assert.equal(auth.code, 235);
    const data = new TextEncoder().encode("Subject: before revocation\r\n\r\nok\r\n.\r\n");
    assert.equal((await client.command("MAIL FROM:<app@site.test>")).code, 250);
    assert.equal((await client.command("RCPT TO:<gina@dest.test>")).code, 250);
    assert.equal((await client.command("DATA")).code, 354);
    await client.write(data);
    assert.match((await client.reply()).raw, QUEUED);

    const revoked = await relay.api(`/v1/credentials/${credential.id}`, { method: "DELETE" });
    assert.equal(revoked.status, 200);
    assert.equal(typeof revoked.json.revoked_at, "string");

    const next = await client.command("MAIL FROM:<app@site.test>");
    assert.equal(next.code, 535, next.raw);
    assert.match(next.lines[0]!, /^5\.7\.8 /);
  } finally {
    await client.quit();
  }

  // A new session cannot log in with it any more, by either mechanism.
  for (const method of ["PLAIN", "LOGIN"] as const) {
    const transporter = transport(relay, "starttls", credential, method);
    try {
      await assert.rejects(
        transporter.sendMail({ from: "app@site.test", to: "gina@dest.test", text: "after" }),
        (error: { responseCode?: number; response?: string }) => {
          assert.equal(error.responseCode, 535, `${method}: ${error.response}`);
          return true;
        },
      );
    } finally {
      transporter.close();
    }
  }
  await sink.waitFor(1);
  assert.equal(sink.messages.length, 1, "only the message sent before revocation went out");
});

/** Every key anywhere in a JSON value. */
function allKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allKeys);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([key, inner]) => [key, ...allKeys(inner)]);
  }
  return [];
}

Deno.test("GET /v1/credentials lists credentials without any password or hash", async () => {
  await using relay = await startRelay();
  const first = await createCredential(relay, "wordpress");
  const second = await createCredential(relay, "billing app");

  const list = await relay.api("/v1/credentials");
  assert.equal(list.status, 200);
  const items = list.json.data as { id: string; name: string; username: string }[];
  assert.deepEqual(
    items.map((c) => [c.id, c.name, c.username]).sort(),
    [[first.id, "wordpress", first.username], [second.id, "billing app", second.username]].sort(),
  );
  const one = await relay.api(`/v1/credentials/${first.id}`);
  assert.equal(one.status, 200);

  for (const body of [list.json, one.json]) {
    const text = JSON.stringify(body);
    assert.ok(!text.includes(first.password) && !text.includes(second.password), text);
    const secretKeys = allKeys(body).filter((key) =>
      /^(password|pass|secret|hash|salt|key|api_?key|token)$/i.test(key) || /hash/i.test(key)
    );
    assert.deepEqual(secretKeys, [], `no secret-bearing fields in ${text}`);
    // Nothing that looks like a password hash or an API key, under any name.
    assert.ok(!/pst_|scrypt|\$[0-9a-z]+\$/i.test(text), text);
  }

  // Anonymous callers get nothing; a credential key may list its own account's credentials
  // (read-only, as above without secrets) but not create one.
  const anonymous = await relay.api("/v1/credentials", { token: "" });
  assert.equal(anonymous.status, 401);
  const asCredential = await relay.api("/v1/credentials", { token: first.password });
  assert.equal(asCredential.status, 200);
  const create = await relay.api("/v1/credentials", { token: first.password, body: { name: "x" } });
  assert.equal(create.status, 403);
});
