/**
 * Postern's own SMTP connection (`engine: "postern"`) against smtp-server's SMTPConnection with our
 * patches (`engine: "smtp-server"`), the engine it replaced: generated conversations, pipelined and
 * cut into arbitrary chunks, are sent to both, and every byte each one answered, up to the moment
 * it closed the connection, must be the same. The callbacks answer by what the client wrote
 * (refusals, temporary failures, 421s, late answers), so the conversations go through each path
 * of the state machine that a relay's policy can take.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as net from "node:net";
import * as tls from "node:tls";
import * as fc from "fast-check";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { applySmtpServerPatches, type PosternServerOptions } from "./smtp_server_patches.ts";
import { listeningPort } from "./server.ts";
import { loopbackCertificate } from "../tests/support/tls_certificate.ts";

applySmtpServerPatches();

type Engine = "smtp-server" | "postern";

const LIMITS = {
  sessionTimeoutMs: 0,
  idleTimeoutMs: 60_000,
  minDataRate: 0,
  tlsHandshakeTimeoutMs: 0,
  softErrorLimit: 4,
  hardErrorLimit: 9,
  errorSleepMs: 1,
  recipientOvershoot: 3,
};

/** A refusal as server.ts makes them: the text carries its enhanced code. */
function refusal(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/** What a callback does is decided by the address: `refuse…`, `temp…`, `bye…`, `late…`. */
function verdict(address: string): Error | null {
  const local = address.split("@")[0] ?? "";
  if (local.startsWith("refuse")) return refusal(550, "5.7.1 Refused by policy");
  if (local.startsWith("temp")) return refusal(451, "4.3.0 Try again later");
  if (local.startsWith("bye")) return refusal(421, "4.7.0 relay.test Closing");
  return null;
}

function answer(address: string, callback: (err?: Error | null) => void) {
  const err = verdict(address);
  if (address.includes("late")) setTimeout(() => callback(err), 2);
  else if (address.includes("soon")) queueMicrotask(() => callback(err));
  else callback(err);
}

async function startServer(engine: Engine, secure: boolean): Promise<SMTPServer> {
  const tls = await loopbackCertificate();
  const postern = {
    engine,
    earlyTalkerPause: false,
    authOnlyOverTls: true,
    refuseSourceRoutes: true,
    limits: LIMITS,
  } as PosternServerOptions;
  const server = new SMTPServer({
    postern,
    secure,
    name: "relay.test",
    banner: "Postern ready",
    size: 400,
    authMethods: ["PLAIN", "LOGIN", "XOAUTH2"],
    authOptional: true,
    allowInsecureAuth: false,
    disableReverseLookup: true,
    lenientAddressParsing: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    key: tls.key,
    cert: tls.cert,
    minVersion: "TLSv1.2",
    logger: false,
    socketTimeout: 60_000,
    maxCommandLength: 200,
    closeTimeout: 1,
    onAuth(auth, _session, callback) {
      const secret = auth.method === "XOAUTH2" ? auth.accessToken : auth.password;
      if (auth.username === "good" && secret === "pw") {
        return callback(null, { user: auth.username });
      }
      const fail = () => callback(refusal(535, "5.7.8 Authentication failed"));
      if (auth.username === "late") setTimeout(fail, 2);
      else fail();
    },
    onMailFrom(address, _session, callback) {
      answer(address.address, callback);
    },
    onRcptTo(address, _session, callback) {
      answer(address.address, callback);
    },
    onData(stream, session, callback) {
      const hash = createHash("sha256");
      let bytes = 0;
      stream.on("data", (chunk: Uint8Array) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      stream.on("end", () => {
        // Answered at once (as the sandbox's refusals are) or later (as intake's commit is).
        if (session.envelope.rcptTo.some((r) => r.address.includes("late"))) {
          setTimeout(finish, 2);
        } else {
          finish();
        }
      });
      const finish = () => {
        const exceeded = (stream as unknown as { sizeExceeded?: boolean }).sizeExceeded;
        if (exceeded) return callback(refusal(552, "5.3.4 Message too big"));
        const digest = hash.digest("hex").slice(0, 16);
        const to = session.envelope.rcptTo.map((r) => r.address).join(",");
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
        if (to.includes("refusedata")) return callback(refusal(554, "5.7.1 Content refused"));
        callback(null, `2.0.0 Queued ${bytes} ${digest} from=${from} to=${to}`);
      };
    },
  } as SMTPServerOptions);
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** Everything the server wrote until it closed the connection (or 2 s passed: "[open]"). */
function converse(port: number, secure: boolean, chunks: Uint8Array[]): Promise<string> {
  return new Promise((resolve) => {
    const socket: net.Socket = secure
      ? tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false })
      : net.connect({ host: "127.0.0.1", port });
    const received: Uint8Array[] = [];
    let open = false;
    const timer = setTimeout(() => {
      open = true;
      socket.destroy();
    }, 2000);
    let greeted = false;
    socket.on("data", async (chunk: Uint8Array) => {
      received.push(chunk);
      // After STARTTLS's 220 the server waits for a handshake this client does not make.
      if (/^220 2\.0\.0 Ready to start TLS/m.test(new TextDecoder("latin1").decode(chunk))) {
        socket.destroy();
        return;
      }
      if (greeted) return;
      // Like a real client, the conversation starts once the greeting is in.
      greeted = true;
      for (const part of chunks) {
        if (socket.destroyed) return;
        // One write per chunk, each waited for, so chunk boundaries mostly reach the server.
        await new Promise<void>((r) => socket.write(part, () => r()));
      }
    });
    // The server closed first (a 421) or reset: what it said is in `received`.
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      const text = new TextDecoder("latin1").decode(concat(received));
      resolve(open ? text + "[open]" : text);
    });
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const b64 = (s: string) => btoa(s);

const oddAddress = fc.constantFrom(
  "<refuse@example.org>",
  "<temp@example.org>",
  "<bye@example.org>",
  "<late@example.org>",
  "<latetemp@example.org>",
  "<soon@example.org>",
  "<refusesoon@example.org>",
  "<refusedata@example.org>",
  "<>",
  "<@relay.example:a@example.org>",
  "<a@xn--bcher-kva.example>",
  "<büch@bücher.example>",
  "<a b@example.org>",
  "a@example.org",
  "<a@example.org",
  "<a@@example.org>",
  '<"quoted local"@example.org>',
  "<a@[127.0.0.1]>",
  `<${"x".repeat(70)}@example.org>`,
);
/** Plain addresses half the time, so transactions often get as far as their DATA. */
const address = fc.oneof(
  { arbitrary: fc.constantFrom("<a@example.org>", "<b@example.org>"), weight: 1 },
  { arbitrary: oddAddress, weight: 1 },
);
const mailParams = fc.constantFrom(
  "",
  " SIZE=100",
  " SIZE=100000",
  " SIZE=abc",
  " BODY=8BITMIME",
  " BODY=7BIT",
  " BODY=BINARYMIME",
  " SMTPUTF8",
  " SMTPUTF8 BODY=8BITMIME",
  " RET=HDRS",
  " ENVID=x",
  " FOO=bar",
  " =",
);
const rcptParams = fc.constantFrom("", " NOTIFY=SUCCESS", " ORCPT=rfc822;a@example.org", " X=1");
const bodyLine = fc.constantFrom(
  "Subject: hi",
  "",
  "plain text",
  ".leading dot",
  "..two dots",
  ".",
  " .",
  "bare\nlf",
  "bare\rcr",
  "\n.\n",
  "\r\n.\r",
  "x".repeat(120),
  "ünïcödé",
  "NUL\u0000here",
);
const command = fc.oneof(
  fc.constantFrom(
    "EHLO client.example",
    "EHLO",
    "EHLO [127.0.0.1]",
    "HELO client.example",
    "HELO",
    "helo client.example",
    "EHLO bad host name",
    "RSET",
    "NOOP",
    "NOOP hello",
    "VRFY a@example.org",
    "VRFY",
    "HELP",
    "QUIT",
    "DATA",
    "data",
    "STARTTLS",
    "STARTTLS now",
    "AUTH",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH CRAM-MD5",
    "AUTH XOAUTH2",
    `AUTH PLAIN ${b64("\0good\0pw")}`,
    `AUTH PLAIN ${b64("\0good\0wrong")}`,
    `AUTH PLAIN ${b64("\0late\0pw")}`,
    `AUTH PLAIN ${b64("nonsense")}`,
    "AUTH PLAIN !!!",
    `AUTH LOGIN ${b64("good")}`,
    b64("good"),
    b64("pw"),
    "*",
    `AUTH XOAUTH2 ${b64("user=good\x01auth=Bearer pw\x01\x01")}`,
    "BDAT 10 LAST",
    "XCLIENT ADDR=1.2.3.4",
    "GET / HTTP/1.1",
    "POST /x HTTP/1.0",
    "",
    " ",
    "MAIL",
    "MAIL FROM",
    "RCPT",
    "RCPT TO",
    "ETRN example.org",
    "KILL",
    "\u00ffjunk",
    "x".repeat(250),
  ),
  fc.tuple(address, mailParams).map(([a, p]) => `MAIL FROM:${a}${p}`),
  fc.tuple(address, rcptParams).map(([a, p]) => `RCPT TO:${a}${p}`),
);

const mailFrom = fc.tuple(address, mailParams, fc.boolean()).map(([a, p, lower]) =>
  `${lower ? "mail from: " : "MAIL FROM:"}${a}${p}`
);
const rcptTo = fc.tuple(address, rcptParams).map(([a, p]) => `RCPT TO:${a}${p}`);
const data = fc.oneof(
  fc.array(bodyLine, { maxLength: 8 }).map((lines) => ["DATA", ...lines, "."].join("\r\n")),
  fc.tuple(fc.array(bodyLine, { maxLength: 3 }), fc.integer({ min: 300, max: 900 })).map((
    [lines, n],
  ) => ["DATA", ...lines, "y".repeat(n), "."].join("\r\n")),
);
/** Mostly whole transactions, so the conversations get past MAIL FROM often. */
const transaction = fc.tuple(mailFrom, fc.array(rcptTo, { minLength: 1, maxLength: 4 }), data)
  .map(([m, r, d]) => [m, ...r, d]);
/** AUTH exchanges, whole or cut short (refused before TLS: 538). */
const auth = fc.constantFrom(
  ["AUTH LOGIN", b64("good"), b64("pw")],
  ["AUTH LOGIN", b64("good"), b64("wrong")],
  ["AUTH LOGIN", "*"],
  ["AUTH LOGIN", b64("good"), "*"],
  ["AUTH LOGIN", "not base64!"],
  [`AUTH LOGIN ${b64("good")}`, b64("pw")],
  ["AUTH PLAIN", b64("\0good\0pw")],
  ["AUTH PLAIN", "*"],
  ["AUTH PLAIN", b64("good\0good\0pw")],
  [`AUTH PLAIN ${b64("\0good\0pw")}`, `AUTH PLAIN ${b64("\0good\0pw")}`],
  [`AUTH PLAIN ${b64("\0late\0x")}`],
  ["AUTH XOAUTH2", b64("user=good\x01auth=Bearer pw\x01\x01")],
  [`AUTH XOAUTH2 ${b64("user=good\x01auth=Bearer bad\x01\x01")}`, ""],
  ["AUTH plain =", "x"],
);
const greeting = fc.constantFrom(
  ["EHLO client.example"],
  ["EHLO client.example"],
  ["EHLO client.example"],
  ["HELO client.example"],
  ["EHLO [127.0.0.1]"],
  [],
);

/**
 * A conversation: a greeting, then transactions and single commands, joined with CRLF (one line
 * may end in a bare LF, which closes the session), cut at random places.
 */
const conversation = fc.tuple(
  greeting,
  fc.array(fc.oneof(transaction, auth, command.map((c) => [c])), { minLength: 1, maxLength: 6 }),
  fc.oneof({ arbitrary: fc.constant(-1), weight: 6 }, {
    arbitrary: fc.nat({ max: 12 }),
    weight: 1,
  }),
  fc.array(fc.nat({ max: 10_000 }), { maxLength: 4 }),
).map(([hello, items, bareLf, cuts]) => {
  const commands = [...hello, ...items.flat()];
  let text = "";
  commands.forEach((c, i) => text += c + (i === bareLf && !c.startsWith("DATA") ? "\n" : "\r\n"));
  // Whatever state it left, the conversation ends: DATA is ended, AUTH cancelled, QUIT.
  text += "\r\n.\r\n*\r\nQUIT\r\nQUIT\r\n";
  const bytes = new TextEncoder().encode(text);
  const points = [...new Set(cuts.map((c) => c % bytes.length))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    if (p > at) chunks.push(bytes.subarray(at, p));
    at = p;
  }
  return { text, chunks };
});

for (const secure of [false, true]) {
  Deno.test(
    `the Postern engine answers every generated conversation as smtp-server did (${
      secure ? "implicit TLS" : "plaintext"
    })`,
    async () => {
      const ours = await startServer("postern", secure);
      const theirs = await startServer("smtp-server", secure);
      try {
        await fc.assert(
          fc.asyncProperty(conversation, async ({ text, chunks }) => {
            const [a, b] = await Promise.all([
              converse(listeningPort(theirs), secure, chunks),
              converse(listeningPort(ours), secure, chunks),
            ]);
            if (Deno.env.get("PARITY_DUMP")) {
              console.log(JSON.stringify({ text, cuts: chunks.map((c) => c.length) }), "\n", a);
            }
            const context = `conversation:\n${JSON.stringify(text)}\nchunks: ${
              chunks.map((c) => c.length).join(",")
            }`;
            // smtp-server leaves some pipelined input unanswered until more arrives (the client
            // waited in vain): there, ours may go on, but must first have said the same.
            if (a.endsWith("[open]") && !b.endsWith("[open]")) {
              assert.ok(b.startsWith(a.slice(0, -"[open]".length)), context);
            } else {
              assert.equal(b, a, context);
            }
          }),
          { numRuns: secure ? 60 : 150 },
        );
      } finally {
        await Promise.all(
          [ours, theirs].map((s) => new Promise<void>((r) => s.close(() => r()))),
        );
      }
    },
  );
}

Deno.test("a second pipelined transaction answered at once is followed by the client's next command (smtp-server left it unread)", async () => {
  // smtp-server's connection, given the whole exchange in one write and an onData that answers
  // within the data stream's 'end' (as the sandbox's refusals do), read nothing after the second
  // DATA's reply until more bytes came: the client waited for its QUIT's 221 until a timeout.
  const text = "EHLO client.example\r\n" +
    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n.\r\n".repeat(2) +
    "QUIT\r\n";
  const server = await startServer("postern", false);
  try {
    const transcript = await converse(listeningPort(server), false, [
      new TextEncoder().encode(text),
    ]);
    const replies = transcript.split("\r\n").filter((l) => /^\d{3} /.test(l));
    assert.deepEqual(replies.map((l) => l.slice(0, 3)), [
      "220",
      "250",
      ...["250", "250", "354", "250"],
      ...["250", "250", "354", "250"],
      "221",
    ]);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
