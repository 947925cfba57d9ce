import { takeReply } from "./smtp_reply.ts";
/**
 * A plain-TCP SMTP client for operations tests: it can hold a DATA transaction open while the
 * test does something else (SIGTERM, a second connection), and stream a large body in pieces.
 * A background reader collects every byte the server sends, so a reply that arrives while the
 * test is busy is never lost, and a closed connection is reported instead of hanging.
 *
 * @module
 */

/** One complete SMTP reply. */
export interface RawReply {
  code: number;
  /** The text of each line after `250-` / `250 `. */
  lines: string[];
  /** The reply as sent, lines joined with "\n". */
  raw: string;
}

const encoder = new TextEncoder();
const DEFAULT_REPLY_TIMEOUT_MS = 20_000;

/** One SMTP session over plain TCP on loopback. */
export class RawSmtp {
  #conn: Deno.Conn;
  #buffer = "";
  #closed = false;
  #waiters = new Set<() => void>();

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#pump();
  }

  /** Connects to 127.0.0.1:`port`; the greeting is the first {@linkcode reply}. */
  static async connect(port: number): Promise<RawSmtp> {
    return new RawSmtp(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Whether the server has closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  async #pump() {
    const chunk = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder("latin1");
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#buffer += decoder.decode(chunk.subarray(0, n));
        this.#notify();
      }
    } catch {
      // Reset or closed by us: either way nothing more will come.
    }
    this.#closed = true;
    this.#notify();
  }

  #notify() {
    for (const waiter of this.#waiters) waiter();
  }

  /** Reads the next complete (possibly multi-line) reply. */
  reply(timeoutMs = DEFAULT_REPLY_TIMEOUT_MS): Promise<RawReply> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const reply = this.#take();
        if (reply !== null) return finish(() => resolve(reply));
        if (this.#closed) {
          finish(() =>
            reject(
              new Error(
                `Cannot read an SMTP reply as the server closed the connection: ` +
                  `buffered ${JSON.stringify(this.#buffer)}`,
              ),
            )
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(
                `Cannot read an SMTP reply as none came within ${timeoutMs} ms: ` +
                  `buffered ${JSON.stringify(this.#buffer)}`,
              ),
            )
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        settle();
      };
      this.#waiters.add(check);
      check();
    });
  }

  #take(): RawReply | null {
    const taken = takeReply(this.#buffer);
    if (!taken) return null;
    this.#buffer = taken.rest;
    return taken.reply;
  }

  /** Writes every byte of `data` (a string is sent as UTF-8). */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /**
   * Writes `segments` one write each with Nagle's algorithm off, so each leaves as its own TCP
   * segment (the server may still read several at once): for tests of how the server
   * reassembles what a client sends in pieces.
   */
  async writeSegments(segments: readonly Uint8Array[]): Promise<void> {
    (this.#conn as Deno.TcpConn).setNoDelay(true);
    for (const segment of segments) await this.write(segment);
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string, timeoutMs?: number): Promise<RawReply> {
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
  async endData(timeoutMs?: number): Promise<RawReply> {
    await this.write(".\r\n");
    return await this.reply(timeoutMs);
  }

  /** A whole transaction with a small message (CRLF line endings, no line starting with "."). */
  async send(from: string, to: string, message: string): Promise<RawReply> {
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
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** The queue id in a `250 2.0.0 OK queued as <id>` reply. */
export function queuedId(reply: RawReply): string {
  const match = /queued as (\S+)/.exec(reply.raw);
  if (reply.code !== 250 || !match) {
    throw new Error(`Cannot find a queue id as the reply was not a 250: ${reply.raw}`);
  }
  return match[1]!;
}
