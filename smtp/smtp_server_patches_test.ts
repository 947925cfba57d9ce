/**
 * One loopback test per smtp-server patch (smtp_server_patches.ts): a real SMTPServer on
 * 127.0.0.1 with our `postern` options, and a raw socket client. Each limit is set so that only
 * the patch can produce what the test waits for (smtp-server's own idle timeout is a minute), so
 * the tests await events and bound them generously instead of timing the server.
 */
import assert from "node:assert/strict";
import type { Server, Socket } from "node:net";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { applySmtpServerPatches, type PosternServerOptions } from "./smtp_server_patches.ts";
import {
  assertSmtpServerInternals,
  type ConnectionInternals,
  installedSmtpServerVersion,
  internalsProblems,
  PATCHED_SMTP_SERVER_VERSION,
  sampleInstalledSmtpServer,
  SmtpServerMismatch,
} from "./smtp_server_internals.ts";
import { SmtpClient } from "../tests/support/smtp_client.ts";
import { loopbackCertificate } from "../tests/support/tls_certificate.ts";
import { listeningPort } from "./server.ts";

applySmtpServerPatches();

const LIMITS = {
  sessionTimeoutMs: 0,
  idleTimeoutMs: 60_000,
  minDataRate: 0,
  tlsHandshakeTimeoutMs: 0,
  softErrorLimit: 100,
  hardErrorLimit: 100,
  errorSleepMs: 0,
  recipientOvershoot: 1000,
};

interface TestServer {
  port: number;
  smtp: SMTPServer;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A patched server; `postern` and `options` override a submission-like default. */
async function startServer(
  postern: Partial<Omit<PosternServerOptions, "limits">> & { limits?: Partial<typeof LIMITS> } = {},
  options: Partial<SMTPServerOptions> = {},
): Promise<TestServer> {
  const tls = await loopbackCertificate();
  const server = new SMTPServer({
    postern: {
      earlyTalkerPause: false,
      authOnlyOverTls: true,
      ...postern,
      limits: { ...LIMITS, ...postern.limits },
    },
    name: "relay.test",
    key: tls.key,
    cert: tls.cert,
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    hideENHANCEDSTATUSCODES: false,
    socketTimeout: 60_000,
    closeTimeout: 100,
    onAuth(_auth, _session, callback) {
      callback(new Error("no"));
    },
    onData(stream, _session, callback) {
      stream.on("data", () => {});
      stream.on("end", () => callback(null, "2.0.0 OK"));
    },
    ...options,
  } as SMTPServerOptions);
  // Handshakes cut off on purpose are reported as server errors.
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: listeningPort(server),
    smtp: server,
    [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Resolves when the server has closed `conn` (a read ends or fails). */
async function closedByServer(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    while ((await conn.read(buf)) !== null) { /* discard what the server says first */ }
  } catch {
    // reset: closed as well
  }
}

/** Waits at most `ms` for `p`; rejects with `what` otherwise. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// --- init: the 100 ms greeting pause -------------------------------------------------------

/**
 * Whether the greeting arrives before a 100 ms timer started just before connecting. The timer
 * is armed before the server can accept, so smtp-server's own 100 ms pause (armed after the
 * accept) always ends after it: with the pause the greeting can never win.
 */
async function greetingBeats100msTimer(port: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<"timer">((r) => timer = setTimeout(() => r("timer"), 100));
  const client = await SmtpClient.open(port);
  const first = await Promise.race([client.reply().then((r) => r.code), elapsed]);
  clearTimeout(timer);
  await client.quit();
  return first === 220;
}

Deno.test("a submission listener greets at once: the greeting beats a 100 ms timer started at connect", async () => {
  await using server = await startServer();
  // Best of five: a loaded machine may stall one attempt past 100 ms; with the pause none wins.
  let beaten = false;
  for (let i = 0; i < 5 && !beaten; i++) beaten = await greetingBeats100msTimer(server.port);
  assert.ok(beaten, "the greeting never came before 100 ms");
});

Deno.test("a submission listener answers a client that talks before the greeting instead of refusing it", async () => {
  await using server = await startServer();
  const client = await SmtpClient.open(server.port);
  await client.write("EHLO client.test\r\n"); // before reading the greeting
  assert.equal((await client.reply()).code, 220);
  const ehlo = await client.reply();
  assert.equal(ehlo.code, 250, ehlo.raw);
  await client.quit();
});

Deno.test("an untrusted listener keeps smtp-server's early-talker pause of 100 ms", async () => {
  await using server = await startServer({ earlyTalkerPause: true });
  for (let i = 0; i < 3; i++) assert.equal(await greetingBeats100msTimer(server.port), false);
});

Deno.test("past maxClients a new session hears our 421 4.3.2 busy reply", async () => {
  await using server = await startServer({}, { maxClients: 1 });
  const first = await SmtpClient.open(server.port);
  assert.equal((await first.reply()).code, 220);
  const second = await SmtpClient.open(server.port);
  const busy = await second.reply();
  assert.equal(busy.code, 421);
  assert.match(busy.raw, /^421 4\.3\.2 relay\.test Error: too many connections/);
  second.close();
  await first.quit();
});

// --- the idle timeout of a plaintext session, on the shared deadlines ----------------------

Deno.test("a plaintext session that keeps talking outlives the idle timeout; one that falls silent hears 421 4.4.2", async () => {
  await using server = await startServer({}, { socketTimeout: 1_500 });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  // Longer than the idle timeout of commands, none of them closer to it than a fifteenth.
  for (let i = 0; i < 20; i++) {
    assert.equal((await client.command("NOOP")).code, 250);
    await new Promise((r) => setTimeout(r, 100));
  }
  const reply = await client.reply(15_000); // unprompted: the idle timeout
  assert.equal(reply.code, 421);
  assert.match(reply.raw, /^421 4\.4\.2 /);
  await client.waitClosed(15_000);
});

Deno.test("after STARTTLS, and on implicit TLS, a session that keeps talking outlives the idle timeout; one that falls silent hears 421 4.4.2", async () => {
  for (const secure of [false, true]) {
    await using server = await startServer({}, { socketTimeout: 1_500, secure });
    const client = await SmtpClient.open(
      secure ? { port: server.port, implicitTls: "unverified" } : server.port,
    );
    await client.hello();
    if (!secure) {
      assert.equal((await client.startTls("unverified")).code, 220);
      assert.equal((await client.command("EHLO client.test")).code, 250);
    }
    // Longer than the idle timeout of commands, none of them closer to it than a fifteenth.
    for (let i = 0; i < 20; i++) {
      assert.equal((await client.command("NOOP")).code, 250);
      await new Promise((r) => setTimeout(r, 100));
    }
    const reply = await client.reply(15_000); // unprompted: the idle timeout
    assert.equal(reply.code, 421, `secure: ${secure}`);
    assert.match(reply.raw, /^421 4\.4\.2 /);
    await client.waitClosed(15_000);
  }
});

// --- session deadline (armed in init) and _onClose -----------------------------------------

Deno.test("a session past its time limit is closed with 421 4.4.2 though the idle timeout is far off", async () => {
  await using server = await startServer({ limits: { sessionTimeoutMs: 400 } });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  assert.equal((await client.command("NOOP")).code, 250);
  const reply = await client.reply(15_000); // unprompted: the session's deadline
  assert.equal(reply.code, 421);
  assert.match(reply.raw, /^421 4\.4\.2 relay\.test Error: session time limit exceeded/);
  client.close();
});

Deno.test("a session that ends clears the deadline timers it armed", async () => {
  let sessionClosed = () => {};
  const closed = new Promise<void>((r) => (sessionClosed = r));
  await using server = await startServer({
    limits: { sessionTimeoutMs: 60_000, minDataRate: 1 },
  }, { onClose: () => sessionClosed() });
  const cleared = new Set<unknown>();
  const clear = globalThis.clearTimeout;
  globalThis.clearTimeout = (id) => {
    cleared.add(id);
    clear(id);
  };
  try {
    const client = await SmtpClient.open(server.port);
    await client.hello();
    await client.command("MAIL FROM:<a@example.org>");
    await client.command("RCPT TO:<b@example.org>");
    assert.equal((await client.command("DATA")).code, 354);
    const [conn] = [...server.smtp.connections] as ConnectionInternals[];
    const armed = [conn!._posternSessionTimer, conn!._posternDataTimer];
    assert.ok(armed.every((t) => t !== undefined), "the session and DATA deadlines were armed");
    client.close();
    await within(closed, 15_000, "the session did not end");
    assert.ok(armed.every((t) => cleared.has(t)), "a deadline timer outlived its session");
  } finally {
    globalThis.clearTimeout = clear;
  }
});

// --- handler_EHLO: AUTH only over TLS ------------------------------------------------------

Deno.test("before TLS EHLO does not offer AUTH, and AUTH sent anyway hears 538 5.7.11", async () => {
  await using server = await startServer();
  const client = await SmtpClient.open(server.port);
  await client.reply();
  const ehlo = await client.command("EHLO client.test");
  assert.ok(!ehlo.lines.some((l) => /^AUTH\b/.test(l)), ehlo.raw);
  assert.ok(ehlo.lines.includes("STARTTLS"), ehlo.raw);
  const auth = await client.command("AUTH PLAIN AGEAYg==");
  assert.equal(auth.code, 538);
  assert.match(auth.raw, /^538 5\.7\.11 /);
  await client.quit();
  // Pipelined right behind EHLO, AUTH gets the same answer.
  const pipelined = await SmtpClient.open(server.port);
  await pipelined.reply();
  await pipelined.write("EHLO client.test\r\nAUTH PLAIN AGEAYg==\r\n");
  assert.equal((await pipelined.reply()).code, 250);
  assert.match((await pipelined.reply()).raw, /^538 5\.7\.11 /);
  await pipelined.quit();
});

Deno.test("a listener that allows AUTH without TLS still offers it in EHLO", async () => {
  await using server = await startServer({ authOnlyOverTls: false });
  const client = await SmtpClient.open(server.port);
  await client.reply();
  const ehlo = await client.command("EHLO client.test");
  assert.ok(ehlo.lines.some((l) => /^AUTH (LOGIN|PLAIN)/.test(l)), ehlo.raw);
  await client.quit();
});

// --- send: enhanced codes and the error counts ---------------------------------------------

Deno.test("a reply that carries its own enhanced code is sent as written, not with a second one", async () => {
  await using server = await startServer({}, {
    onMailFrom(_address, _session, callback) {
      callback(Object.assign(new Error("5.7.1 Sender domain refused"), { responseCode: 550 }));
    },
  });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  const refused = await client.command("MAIL FROM:<a@example.org>");
  assert.equal(refused.raw, "550 5.7.1 Sender domain refused");
  await client.quit();
});

Deno.test("at the hard error limit the session is closed with 421 4.7.0 too many errors", async () => {
  await using server = await startServer({ limits: { hardErrorLimit: 3 } });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  assert.equal((await client.command("BOGUS")).code, 500);
  assert.equal((await client.command("BOGUS")).code, 500);
  const last = await client.command("BOGUS");
  assert.equal(last.code, 500);
  const closing = await client.reply();
  assert.equal(closing.code, 421);
  assert.match(closing.raw, /^421 4\.7\.0 relay\.test Error: too many errors/);
  client.close();
});

// --- _onCommand: the tarpit past the soft error limit --------------------------------------

Deno.test("past the soft error limit each command is read only after the error sleep", async () => {
  await using server = await startServer({ limits: { softErrorLimit: 1, errorSleepMs: 400 } });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  await client.command("BOGUS");
  await client.command("BOGUS"); // two errors: past the soft limit of one
  const started = performance.now();
  assert.equal((await client.command("NOOP")).code, 250);
  const waited = performance.now() - started;
  // A lower bound only: load can lengthen the wait, never shorten it.
  assert.ok(waited >= 350, `NOOP answered after ${waited.toFixed(0)} ms`);
  await client.quit();
});

// --- _parseAddressCommand: the path as written ---------------------------------------------

Deno.test("addresses reach the handlers as the client wrote them, and a source route is not stripped", async () => {
  const seen: { address: string; written?: string }[] = [];
  await using server = await startServer({ refuseSourceRoutes: true }, {
    onMailFrom(address, _session, callback) {
      seen.push(address as { address: string; written?: string });
      callback();
    },
    onRcptTo(address, _session, callback) {
      seen.push(address as { address: string; written?: string });
      callback(Object.assign(new Error("5.1.3 seen"), { responseCode: 553 }));
    },
  });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  assert.equal((await client.command("MAIL FROM:<user@xn--bcher-kva.example>")).code, 250);
  await client.command("RCPT TO:<@relay.example:user@example.org>");
  await client.quit();
  assert.equal(seen[0]!.written, "user@xn--bcher-kva.example");
  assert.equal(seen[1]!.address, "@relay.example:user@example.org");
});

// --- handler_DATA: the minimum data rate ---------------------------------------------------

Deno.test("DATA that stops arriving is cut off with 421 4.4.2 at the minimum-rate deadline", async () => {
  await using server = await startServer({ limits: { idleTimeoutMs: 300, minDataRate: 1000 } });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  await client.beginData("a@example.org", "b@example.org");
  await client.write("Subject: slow\r\n");
  const cut = await client.reply(15_000);
  assert.equal(cut.code, 421);
  assert.match(
    cut.raw,
    /^421 4\.4\.2 relay\.test Error: message data arrived below the minimum rate/,
  );
  client.close();
});

// --- _createParser: bare LF in commands, the line-length reply -----------------------------

Deno.test("a bare LF in a command line is refused with 550 5.5.2 and the session closed", async () => {
  const mailFrom: string[] = [];
  await using server = await startServer({}, {
    onMailFrom(address, _session, callback) {
      mailFrom.push(address.address);
      callback();
    },
  });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  await client.write("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\r\n");
  const refused = await client.reply();
  assert.equal(refused.code, 550);
  assert.match(refused.raw, /^550 5\.5\.2 Error: bare <LF> received/);
  await assert.rejects(client.reply(), /closed the connection/);
  assert.deepEqual(mailFrom, []);
});

Deno.test("a command line over the limit is answered 421 4.7.0 line too long", async () => {
  await using server = await startServer({}, { maxCommandLength: 100 });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  const tooLong = await client.command(`NOOP ${"x".repeat(200)}`);
  assert.equal(tooLong.code, 421);
  assert.match(tooLong.raw, /^421 4\.7\.0 relay\.test Error: line too long/);
  client.close();
});

// --- pipelining: replies in order, each at once ---------------------------

type WriteCallback = (err?: Error | null) => void;
interface WritableHooks {
  _write(chunk: Uint8Array, encoding: string, cb: WriteCallback): void;
  _writev?(chunks: { chunk: Uint8Array }[], cb: WriteCallback): void;
}

/** What the server writes to its sessions' sockets, one entry per write (seen, not altered). */
function recordWrites(server: TestServer): string[] {
  const writes: string[] = [];
  const net = (server.smtp as unknown as { server: Server }).server;
  net.on("connection", (socket: Socket) => {
    const hooks = socket as unknown as WritableHooks;
    const write = hooks._write.bind(socket);
    hooks._write = (chunk, encoding, cb) => {
      writes.push(String(chunk));
      write(chunk, encoding, cb);
    };
    const writev = hooks._writev?.bind(socket);
    if (writev) {
      hooks._writev = (chunks, cb) => {
        writes.push(chunks.map((c) => String(c.chunk)).join(""));
        writev(chunks, cb);
      };
    }
  });
  return writes;
}

/** Handlers that decide a little later, as the relay's do (they look things up). */
const answerLater = {
  onMailFrom(_a: unknown, _s: unknown, callback: () => void) {
    setTimeout(callback, 1);
  },
  onRcptTo(_a: unknown, _s: unknown, callback: () => void) {
    setTimeout(callback, 1);
  },
} as Partial<SMTPServerOptions>;

Deno.test("the replies to a pipelined MAIL, RCPT, RCPT, DATA come back in order", async () => {
  await using server = await startServer({}, answerLater);
  const writes = recordWrites(server);
  const client = await SmtpClient.open(server.port);
  await client.hello();
  writes.length = 0;
  await client.write(
    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
  );
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await client.reply()).code);
  assert.deepEqual(codes, [250, 250, 250, 354]);
  assert.match(writes.join(""), /^250 [^\r]*\r\n250 [^\r]*\r\n250 [^\r]*\r\n354 /);
  await client.write("Subject: one\r\n\r\nbody\r\n.\r\n");
  assert.equal((await client.reply()).code, 250);
  await client.quit();
});

Deno.test("a client that waits for each reply still gets each one at once, in its own write", async () => {
  await using server = await startServer({}, answerLater);
  const writes = recordWrites(server);
  const client = await SmtpClient.open(server.port);
  await client.hello();
  writes.length = 0;
  assert.equal((await client.command("MAIL FROM:<a@example.org>")).code, 250);
  assert.equal((await client.command("RCPT TO:<b@example.org>")).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
  assert.equal(writes.length, 3);
  await client.write("Subject: one\r\n\r\nbody\r\n.\r\n");
  assert.equal((await client.reply()).code, 250);
  await client.quit();
});

Deno.test("STARTTLS pipelined behind other commands still hears its 220 before the handshake", async () => {
  await using server = await startServer();
  const client = await SmtpClient.open(server.port);
  await client.reply();
  await client.write("EHLO client.test\r\nNOOP\r\nSTARTTLS\r\n");
  const codes = [];
  for (let i = 0; i < 3; i++) codes.push((await within(client.reply(), 10_000, "a reply")).code);
  assert.deepEqual(codes, [250, 250, 220]);
  client.close();
});

// --- upgrade and SMTPServer._upgrade: TLS handshake deadlines ------------------------------

Deno.test("a STARTTLS handshake that never comes is cut off at the handshake deadline", async () => {
  await using server = await startServer({ limits: { tlsHandshakeTimeoutMs: 300 } });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  assert.equal((await client.command("STARTTLS")).code, 220);
  // smtp-server alone would wait for its one-minute idle timeout.
  await assert.rejects(client.reply(15_000), /closed the connection/);
  client.close();
});

Deno.test("with no handshake deadline, a STARTTLS handshake that never comes is cut off at the idle timeout", async () => {
  await using server = await startServer({ limits: { tlsHandshakeTimeoutMs: 0 } }, {
    socketTimeout: 300,
  });
  const client = await SmtpClient.open(server.port);
  await client.hello();
  assert.equal((await client.command("STARTTLS")).code, 220);
  await assert.rejects(client.reply(15_000), /closed the connection/);
  client.close();
});

Deno.test("an implicit-TLS handshake that never comes is cut off at the handshake deadline", async () => {
  await using server = await startServer({ limits: { tlsHandshakeTimeoutMs: 300 } }, {
    secure: true,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await within(closedByServer(conn), 15_000, "the silent TLS client was not cut off");
  conn.close();
});

// --- SMTPServer._acceptSocket: implicit-TLS sockets per client ------------------------------

Deno.test("on implicit TLS a client past its socket limit is closed at once, before any handshake", async () => {
  await using server = await startServer({
    tlsSocketsPerClient: 1,
    limits: { tlsHandshakeTimeoutMs: 60_000 },
  }, { secure: true });
  const first = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const second = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await within(closedByServer(second), 15_000, "the second socket was not closed");
  second.close();
  first.close();
});

// --- the start-up check --------------------------------------------------------------------

Deno.test("the installed smtp-server has every member the patches rely on", () => {
  assert.equal(installedSmtpServerVersion, PATCHED_SMTP_SERVER_VERSION);
  assert.deepEqual(internalsProblems(sampleInstalledSmtpServer()), []);
});

Deno.test("a smtp-server without a patched member, or with one of another shape, is refused in one line naming its version", () => {
  const real = sampleInstalledSmtpServer();
  const changed = {
    ...real,
    version: "9.9.9",
    connection: Object.create(real.connection, {
      _onCommand: { value: undefined },
      send: { value: (code: number) => code },
    }),
  };
  assert.throws(() => assertSmtpServerInternals(changed), (err: Error) => {
    assert.ok(err instanceof SmtpServerMismatch);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, /^smtp-server 9\.9\.9 /);
    assert.match(err.message, /SMTPConnection\._onCommand \(expected a method, found undefined\)/);
    assert.match(err.message, /SMTPConnection\.send \(expected 3 parameters, found 1\)/);
    return true;
  });
});

// --- a client's reset: quiet after QUIT (no stack formatted), reported inside a transaction ------

/** Python's socket module: a real client that ends with a reset (SO_LINGER 0) after `commands`. */
async function resetAfter(port: number, commands: string[]): Promise<void> {
  const script = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", ${port}))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return
reply()
for c in sys.argv[1:]:
    s.sendall(c.encode() + b"\\r\\n")
    reply()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
`;
  const done = await new Deno.Command("python3", { args: ["-c", script, ...commands] }).output();
  assert.equal(done.code, 0, new TextDecoder().decode(done.stderr));
}

Deno.test("a client that resets after QUIT ends its session unreported; one that resets mid-transaction is reported with its stack", async () => {
  let closes = 0;
  let sessionClosed = () => {};
  await using server = await startServer({}, {
    onClose: () => {
      closes++;
      sessionClosed();
    },
  });
  const errors: (Error & { code?: string })[] = [];
  server.smtp.on("error", (err: Error) => errors.push(err));
  // Every stack trace formatted for a reset is counted (V8 asks Error.prepareStackTrace).
  let resetStacks = 0;
  const prepare = (Error as { prepareStackTrace?: unknown }).prepareStackTrace;
  (Error as { prepareStackTrace?: unknown }).prepareStackTrace = (
    err: Error,
    frames: unknown[],
  ) => {
    if ((err as { code?: string }).code === "ECONNRESET") resetStacks++;
    return `${err.name}: ${err.message}\n${frames.map((f) => `    at ${f}`).join("\n")}`;
  };
  using _restore = {
    [Symbol.dispose]: () => (Error as { prepareStackTrace?: unknown }).prepareStackTrace = prepare,
  };

  let closed = new Promise<void>((r) => (sessionClosed = r));
  await resetAfter(server.port, ["EHLO client.test", "QUIT"]);
  await within(closed, 15_000, "the session after QUIT did not end");
  assert.equal(errors.length, 0, "a reset after QUIT is not reported");
  assert.equal(resetStacks, 0, "nor is its stack formatted");

  closed = new Promise<void>((r) => (sessionClosed = r));
  await resetAfter(server.port, ["EHLO client.test", "MAIL FROM:<a@example.org>"]);
  await within(closed, 15_000, "the session inside a transaction did not end");
  assert.equal(closes, 2);
  assert.equal(errors.length, 1, "a reset inside a transaction is reported");
  assert.equal(errors[0]!.code, "ECONNRESET");
  assert.match(errors[0]!.stack ?? "", /\n\s+at /, "and keeps its stack");
});

// --- close(): the wait for the client to close after QUIT, on the shared deadlines ----------

Deno.test("after QUIT, a client that keeps its side open and trickles bytes is disconnected once the wait for its close is over", async () => {
  let sessionClosed = () => {};
  const closed = new Promise<void>((r) => (sessionClosed = r));
  // The wait is the idle timeout when that is under 5 s; a byte every 50 ms keeps the idle
  // timeout itself from ever firing, so only the wait can end the session.
  await using server = await startServer({}, {
    socketTimeout: 400,
    onClose: () => sessionClosed(),
  });
  const script = `
import socket, sys, time
s = socket.create_connection(("127.0.0.1", ${server.port}))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line
reply()
s.sendall(b"EHLO client.test\\r\\n"); reply()
s.sendall(b"QUIT\\r\\n")
if not reply().startswith(b"221"):
    sys.exit("no 221")
start = time.monotonic()
while time.monotonic() - start < 15:
    try:
        s.sendall(b"x")
    except OSError:
        sys.exit(0)  # the server closed the socket
    time.sleep(0.05)
sys.exit("still open after 15 s")
`;
  const done = await new Deno.Command("python3", { args: ["-c", script] }).output();
  assert.equal(done.code, 0, new TextDecoder().decode(done.stderr));
  await within(closed, 15_000, "the session did not end");
});
