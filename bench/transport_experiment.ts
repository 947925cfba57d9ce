/**
 * Issue 18's experiment on the inbound transport, kept so its numbers can be re-measured (the
 * result is in bench/README.md, "Replacing node:net under smtp-server"): what one SMTP session
 * costs the process in CPU with smtp-server (our patches applied) on
 *
 *   node  — node:net, as the relay runs it;
 *   shim  — a lean Duplex over a `Deno.listen` connection, handed to the same SMTPServer;
 *   raw   — no smtp-server: a bare lock-step responder on `Deno.listen` (the floor for any
 *           protocol engine on Deno's own TCP).
 *
 * Every message is drained and answered 250 at once (no store, no delivery), so only the door
 * is measured. Run one mode at a time against smtp-source (Debian's postfix package):
 *
 *   deno run -A bench/transport_experiment.ts node 12999 4000 &
 *   smtp-source -s 20 -m 4000 -l 2048 -f a@b.test -t c@d.test 127.0.0.1:12999
 *
 * The server exits after N messages with one line: the process's CPU (user + system, all
 * threads) from the first connection to the Nth message, per message.
 *
 * @module
 */
import { Duplex } from "node:stream";
import process from "node:process";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { applySmtpServerPatches } from "../smtp/smtp_server_patches.ts";
import { loopbackCertificate } from "../tests/support/tls_certificate.ts";

const [mode, portArg, countArg] = Deno.args;
if (!mode || !["node", "shim", "raw", "rawnode"].includes(mode) || !portArg || !countArg) {
  console.error("usage: transport_experiment.ts node|shim|raw PORT MESSAGES");
  Deno.exit(2);
}
const port = Number(portArg);
const messages = Number(countArg);

let received = 0;
let started: NodeJS.CpuUsage | null = null;
const sessionStarted = () => started ??= process.cpuUsage();
const messageReceived = () => {
  if (++received < messages) return;
  const d = process.cpuUsage(started!);
  const perMessage = (us: number) => (us / 1000 / messages).toFixed(3);
  console.log(
    `RESULT mode=${mode} n=${messages} cpu_ms_per_msg=${perMessage(d.user + d.system)} ` +
      `user=${perMessage(d.user)} sys=${perMessage(d.system)}`,
  );
  Deno.exit(0);
};

/**
 * The members of net.Socket that SMTPConnection uses, over a Deno.Conn. Reads are pulled when the
 * pipe asks; the idle timeout is one timer per socket that moves its deadline instead of being
 * re-armed on every read and write; a reset (the client left after QUIT) ends the stream like a
 * FIN instead of building an error.
 */
class DenoConnSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  #conn: Deno.TcpConn;
  #reading = false;
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastActive = 0;

  constructor(conn: Deno.TcpConn) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    const remote = conn.remoteAddr, local = conn.localAddr;
    this.remoteAddress = remote.hostname;
    this.remotePort = remote.port;
    this.localAddress = local.hostname;
    this.localPort = local.port;
  }

  get readyState(): string {
    return this.readable && this.writable ? "open" : this.readable ? "readOnly" : "writeOnly";
  }

  setNoDelay(on = true): this {
    this.#conn.setNoDelay(on);
    return this;
  }

  setTimeout(ms: number, onTimeout?: () => void): this {
    this.#timeoutMs = ms;
    if (onTimeout) this.once("timeout", onTimeout);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#active();
    return this;
  }

  #active() {
    this.#lastActive = performance.now();
    if (this.#timer !== undefined || !(this.#timeoutMs > 0) || this.destroyed) return;
    const check = () => {
      const left = this.#lastActive + this.#timeoutMs - performance.now();
      if (left > 0) {
        this.#timer = setTimeout(check, left);
        return;
      }
      this.#timer = undefined;
      this.emit("timeout");
    };
    this.#timer = setTimeout(check, this.#timeoutMs);
  }

  override _read() {
    if (this.#reading) return;
    this.#reading = true;
    (async () => {
      while (true) {
        const buffer = new Uint8Array(16384);
        const n = await this.#conn.read(buffer);
        if (n === null) return this.push(null);
        this.#active();
        if (!this.push(buffer.subarray(0, n))) break;
      }
      this.#reading = false;
    })().catch((err) => {
      if (err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BadResource) {
        this.push(null);
        this.destroy();
      } else this.destroy(err);
    });
  }

  override _write(chunk: Uint8Array, _encoding: string, done: (err?: Error | null) => void) {
    this.#active();
    const rest = async (from: number) => {
      while (from < chunk.length) from += await this.#conn.write(chunk.subarray(from));
    };
    rest(0).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void) {
    this.#conn.closeWrite().then(() => done(), () => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void) {
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer's reset
    }
    done(err);
  }
}

async function smtpServer(): Promise<SMTPServer> {
  applySmtpServerPatches();
  const tls = await loopbackCertificate();
  return new SMTPServer({
    // The relay's submission settings (smtp/server.ts), so every patch runs as in production.
    postern: {
      earlyTalkerPause: false,
      authOnlyOverTls: true,
      refuseSourceRoutes: true,
      limits: {
        sessionTimeoutMs: 300_000,
        idleTimeoutMs: 60_000,
        minDataRate: 0,
        tlsHandshakeTimeoutMs: 10_000,
        softErrorLimit: 10,
        hardErrorLimit: 20,
        errorSleepMs: 1000,
        recipientOvershoot: 1000,
      },
    },
    name: "relay.test",
    banner: "Postern ready",
    key: tls.key,
    cert: tls.cert,
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    lenientAddressParsing: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    onConnect(_session, callback) {
      sessionStarted();
      callback();
    },
    onData(stream, _session, callback) {
      stream.on("data", () => {});
      stream.on("end", () => {
        callback(null, "2.0.0 OK queued as x");
        messageReceived();
      });
    },
  } as SMTPServerOptions);
}

/**
 * The bare responder's protocol, shared by both transports: takes what arrived, returns the
 * replies to the complete lines in it (EHLO, MAIL, RCPT, DATA, QUIT, each answered at once).
 */
function lockStepResponder(): (text: string) => string {
  let pending = "";
  let inData = false;
  return (text) => {
    pending += text;
    let replies = "";
    for (let end = pending.indexOf("\r\n"); end >= 0; end = pending.indexOf("\r\n")) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (inData) {
        if (line === ".") {
          inData = false;
          replies += "250 2.0.0 OK\r\n";
          messageReceived();
        }
        continue;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") replies += "250-relay.test\r\n250 PIPELINING\r\n";
      else if (verb === "DATA") {
        inData = true;
        replies += "354 go ahead\r\n";
      } else if (verb === "QUIT") replies += "221 2.0.0 bye\r\n";
      else replies += "250 2.1.0 OK\r\n";
    }
    return replies;
  };
}

/** One lock-step session on a Deno.listen connection. */
async function rawSession(conn: Deno.TcpConn) {
  const encoder = new TextEncoder(), decoder = new TextDecoder();
  const respond = lockStepResponder();
  conn.setNoDelay(true);
  await conn.write(encoder.encode("220 relay.test ESMTP\r\n"));
  const buffer = new Uint8Array(65536);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    const replies = respond(decoder.decode(buffer.subarray(0, n)));
    if (replies) await conn.write(encoder.encode(replies));
  }
  conn.close();
}

/** The same session on node:net (the floor for an engine that keeps node's sockets). */
function rawNodeSession(socket: import("node:net").Socket) {
  const respond = lockStepResponder();
  socket.setNoDelay(true);
  socket.write("220 relay.test ESMTP\r\n");
  socket.on("data", (chunk: Uint8Array) => {
    const replies = respond(chunk.toString());
    if (replies) socket.write(replies);
  });
  socket.on("error", () => {});
}

if (mode === "rawnode") {
  const net = await import("node:net");
  net.createServer((socket) => {
    sessionStarted();
    rawNodeSession(socket);
  }).listen(port, "127.0.0.1");
} else if (mode === "node") {
  (await smtpServer()).listen(port, "127.0.0.1");
} else {
  const server = mode === "shim" ? await smtpServer() : null;
  for await (const conn of Deno.listen({ hostname: "127.0.0.1", port })) {
    if (server) server.server.emit("connection", new DenoConnSocket(conn));
    else {
      sessionStarted();
      rawSession(conn).catch(() => {});
    }
  }
}
