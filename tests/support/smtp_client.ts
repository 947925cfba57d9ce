/**
 * The one SMTP test client: a line-oriented session on node:net / node:tls sockets, for tests
 * that must see the exact replies a server sends (EHLO keywords, enhanced codes), send bytes no
 * well-behaved library would (bare LF, one byte per TCP segment), hold a DATA transaction open
 * while doing something else, or choose the client's source address (`localAddress`, e.g.
 * 127.0.0.2 as "another client" on loopback: Deno.connect cannot bind one).
 *
 * Every byte the server sends is collected as it comes, so a reply that arrives while the test
 * is busy is never lost; every wait gives up after a timeout, and a closed connection is
 * reported instead of hanging.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { TAG_HEADER } from "./operations.ts";

/** One complete reply: the code, every line's text, and the lines as sent. */
export interface SmtpReply {
  code: number;
  /** The text of each line after `250-` / `250 `. */
  lines: string[];
  /** The reply as sent, lines joined with "\n". */
  raw: string;
}

/** TLS on connect (SMTPS) or after STARTTLS: `caCert` is trusted for the name "localhost". */
export type TlsTrust = { caCert: string } | "unverified";

export interface SmtpClientOptions {
  port: number;
  /** @default "127.0.0.1" */
  hostname?: string;
  /** The client's source address. @default the kernel's choice (127.0.0.1 on loopback) */
  localAddress?: string;
  /** Implicit TLS (SMTPS) from the first byte. */
  implicitTls?: TlsTrust;
  /** How long one reply may take. @default 20000 */
  replyTimeoutMs?: number;
}

/**
 * Takes one complete (possibly multi-line) reply from the front of `buffer`; null while the
 * reply's last line has not arrived yet.
 */
function takeReply(buffer: string): { reply: SmtpReply; rest: string } | null {
  const lines: string[] = [];
  let offset = 0;
  for (;;) {
    const end = buffer.indexOf("\r\n", offset);
    if (end === -1) return null;
    const line = buffer.slice(offset, end);
    offset = end + 2;
    lines.push(line);
    if (!/^\d{3}-/.test(line)) break;
  }
  return {
    reply: {
      code: Number(lines[lines.length - 1]!.slice(0, 3)),
      lines: lines.map((line) => line.slice(4)),
      raw: lines.join("\n"),
    },
    rest: buffer.slice(offset),
  };
}

function tlsOptions(trust: TlsTrust): tls.ConnectionOptions {
  return trust === "unverified"
    ? { rejectUnauthorized: false, servername: "localhost" }
    : { ca: [trust.caCert], servername: "localhost" };
}

/** One SMTP session; the greeting is the first reply. */
export class SmtpClient {
  #socket: net.Socket;
  #buffer = "";
  #closed = false;
  /** The server sent its FIN (the socket may still be open for reading what came before). */
  #ended = false;
  #waiters = new Set<() => void>();
  #timeoutMs: number;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.#attach(socket);
  }

  /** Connects; the greeting is left for the first {@linkcode reply} (or {@linkcode hello}). */
  static async open(options: SmtpClientOptions | number): Promise<SmtpClient> {
    const o = typeof options === "number" ? { port: options } : options;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const base = {
        host: o.hostname ?? "127.0.0.1",
        port: o.port,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      };
      const s: net.Socket = o.implicitTls
        ? tls.connect({ ...base, ...tlsOptions(o.implicitTls) }, () => resolve(s))
        : net.connect(base, () => resolve(s));
      s.once("error", reject);
    });
    return new SmtpClient(socket, o.replyTimeoutMs ?? 20_000);
  }

  /** Connects and reads the greeting (or the refusal, e.g. a 421, before the close). */
  static async connect(
    options: SmtpClientOptions | number,
  ): Promise<{ client: SmtpClient; greeting: SmtpReply }> {
    const client = await SmtpClient.open(options);
    try {
      return { client, greeting: await client.reply() };
    } catch (error) {
      client.close();
      throw error;
    }
  }

  #attach(socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#buffer += chunk.toString("latin1");
      this.#notify();
    });
    socket.once("end", () => (this.#ended = true));
    // A reset is reported as the close that follows it.
    socket.on("error", () => {});
    socket.once("close", () => {
      this.#closed = true;
      this.#ended = true;
      this.#notify();
    });
  }

  #notify() {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves when `check` settles it (called on every byte and on the close), or rejects. */
  #wait<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const poll = () => {
        try {
          const value = check();
          if (value !== undefined) finish(() => resolve(value));
        } catch (error) {
          finish(() => reject(error));
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(
                `Cannot ${what} as nothing came within ${timeoutMs} ms: ` +
                  `buffered ${JSON.stringify(this.#buffer)}`,
              ),
            )
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(poll);
        settle();
      };
      this.#waiters.add(poll);
      poll();
    });
  }

  /** Whether the server has closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once the server has closed the connection; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = this.#timeoutMs): Promise<void> {
    return this.#wait(() => (this.#closed ? true : undefined), timeoutMs, "see the close")
      .then(() => {});
  }

  /** Reads the next complete (possibly multi-line) reply. */
  reply(timeoutMs = this.#timeoutMs): Promise<SmtpReply> {
    return this.#wait(
      () => {
        const taken = takeReply(this.#buffer);
        if (taken) {
          this.#buffer = taken.rest;
          return taken.reply;
        }
        if (this.#closed) {
          throw new Error(
            `Cannot read an SMTP reply as the server closed the connection: ` +
              `buffered ${JSON.stringify(this.#buffer)}`,
          );
        }
        return undefined;
      },
      timeoutMs,
      "read an SMTP reply",
    );
  }

  /**
   * Writes every byte of `data` (a string is sent as UTF-8). Once the server has hung up, what is
   * written is dropped, as a kernel would take it: the next read then returns what the server
   * said last (a 421) or reports the close, rather than the write failing first.
   */
  write(data: Uint8Array | string): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.#socket.write(data, (err) => (err && !this.#ended ? reject(err) : resolve()))
    );
  }

  /**
   * Writes `segments` one write each, waiting for each to leave, with Nagle's algorithm off: each
   * leaves as its own TCP segment (the server may still read several at once), for tests of how
   * the server reassembles what a client sends in pieces.
   */
  async writeSegments(segments: readonly Uint8Array[]): Promise<void> {
    for (const segment of segments) await this.write(segment);
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    await this.write(line + "\r\n");
    return await this.reply(timeoutMs);
  }

  /** Reads the greeting and says EHLO; throws unless both succeed. */
  async hello(name = "client.test"): Promise<void> {
    const greeting = await this.reply();
    if (greeting.code !== 220) throw new Error(`Cannot start the session: ${greeting.raw}`);
    const ehlo = await this.command(`EHLO ${name}`);
    if (ehlo.code !== 250) throw new Error(`Cannot say EHLO: ${ehlo.raw}`);
  }

  /** STARTTLS, then the handshake. */
  async startTls(trust: TlsTrust): Promise<SmtpReply> {
    const reply = await this.command("STARTTLS");
    if (reply.code !== 220) return reply;
    await this.upgradeToTls(trust);
    return reply;
  }

  /**
   * The TLS handshake alone, after the caller sent STARTTLS (possibly with more behind it) and
   * read the 220. Throws if the server sent anything after the 220 in plaintext.
   */
  async upgradeToTls(trust: TlsTrust): Promise<void> {
    if (this.#buffer !== "") {
      throw new Error(
        `Cannot start TLS as the server sent data early: ${JSON.stringify(this.#buffer)}`,
      );
    }
    const plain = this.#socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    this.#socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, ...tlsOptions(trust) }, () => resolve(s));
      s.once("error", reject);
    });
    this.#attach(this.#socket);
  }

  /** AUTH PLAIN with one initial response. */
  authPlain(username: string, password: string): Promise<SmtpReply> {
    const token = Buffer.from(`\0${username}\0${password}`, "utf8").toString("base64");
    return this.command(`AUTH PLAIN ${token}`);
  }

  /**
   * MAIL, RCPT and DATA up to the 354; throws on any other reply. The caller then writes the
   * (dot-stuffed) message and calls {@linkcode endData}.
   */
  async beginData(from: string, to: string): Promise<void> {
    for (const line of [`MAIL FROM:<${from}>`, `RCPT TO:<${to}>`]) {
      const reply = await this.command(line);
      if (reply.code !== 250) throw new Error(`Cannot send '${line}': ${reply.raw}`);
    }
    const go = await this.command("DATA");
    if (go.code !== 354) throw new Error(`Cannot start DATA: ${go.raw}`);
  }

  /** Ends the data (which must end with CRLF) and returns the reply to it. */
  async endData(timeoutMs?: number): Promise<SmtpReply> {
    await this.write(".\r\n");
    return await this.reply(timeoutMs);
  }

  /** A whole transaction with a small message (CRLF line endings, no line starting with "."). */
  async send(from: string, to: string, message: string): Promise<SmtpReply> {
    await this.beginData(from, to);
    await this.write(message.endsWith("\r\n") ? message : message + "\r\n");
    return await this.endData();
  }

  /** Sends QUIT when the connection is still open, then closes it. */
  async quit(): Promise<void> {
    if (!this.#closed) await this.command("QUIT", 5_000).catch(() => {});
    this.close();
  }

  close(): void {
    this.#socket.destroy();
  }
}

/**
 * A complete transaction after EHLO (and AUTH, if any): MAIL, RCPT..., DATA, the message bytes
 * (which must already be dot-stuffed and end with CRLF) and the final dot. Returns the reply
 * after the data, or the first refusal.
 */
export async function sendTransaction(
  client: SmtpClient,
  from: string,
  to: string[],
  data: Uint8Array,
): Promise<SmtpReply> {
  const mail = await client.command(`MAIL FROM:<${from}>`);
  if (mail.code !== 250) return mail;
  for (const rcpt of to) {
    const reply = await client.command(`RCPT TO:<${rcpt}>`);
    if (reply.code !== 250) return reply;
  }
  const go = await client.command("DATA");
  if (go.code !== 354) return go;
  await client.write(data);
  return await client.endData();
}

/** The queue id in a `250 2.0.0 OK queued as <id>` reply. */
export function queuedId(reply: SmtpReply): string {
  const match = /queued as (\S+)/.exec(reply.raw);
  if (reply.code !== 250 || !match) {
    throw new Error(`Cannot find a queue id as the reply was not a 250: ${reply.raw}`);
  }
  return match[1]!;
}

export interface OutgoingMessage {
  from: string;
  to: string | string[];
  /** Tag put in X-Postern-Test-Id, so the sink side can tell messages apart. */
  tag: string;
  /** Extra header lines, e.g. "X-Postern-Pool: warm". */
  headers?: string[];
}

/** Submits messages over one trusted-network session (no AUTH); returns their queue ids. */
export async function submit(
  relay: { smtpPort: number },
  messages: OutgoingMessage[],
): Promise<string[]> {
  const client = await SmtpClient.open(relay.smtpPort);
  try {
    await client.hello();
    const ids: string[] = [];
    for (const m of messages) {
      const to = Array.isArray(m.to) ? m.to : [m.to];
      const data = [
        `From: ${m.from || "mailer@origin.test"}`,
        `To: ${to.join(", ")}`,
        `Subject: test ${m.tag}`,
        `${TAG_HEADER}: ${m.tag}`,
        ...(m.headers ?? []),
        "",
        `Body of ${m.tag}.`,
        "",
      ].join("\r\n");
      const reply = await sendTransaction(client, m.from, to, new TextEncoder().encode(data));
      if (reply.code !== 250) throw new Error(`Cannot submit ${m.tag}: ${reply.raw}`);
      ids.push(queuedId(reply));
    }
    return ids;
  } finally {
    await client.quit();
  }
}
