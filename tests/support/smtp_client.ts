import { takeReply } from "./smtp_reply.ts";
/**
 * A raw SMTP client over Deno sockets, for tests that must see the exact replies a server sends
 * (EHLO keywords, enhanced codes) or send bytes no well-behaved library would (bare LF).
 *
 * @module
 */

/** One complete reply: the code, every line's text, and the lines as sent. */
export interface SmtpReply {
  code: number;
  /** The text of each line after `250-` / `250 `. */
  lines: string[];
  /** The reply as sent, lines joined with "\n". */
  raw: string;
}

export interface SmtpClientOptions {
  port: number;
  /** @default "127.0.0.1" */
  hostname?: string;
  /** Implicit TLS (SMTPS): the PEM certificate to trust; the server name checked is "localhost". */
  implicitTlsCaCert?: string;
  /** How long one reply may take. @default 15000 */
  replyTimeoutMs?: number;
}

const encoder = new TextEncoder();

/** A line-oriented SMTP client; every method that waits for a reply gives up after a timeout. */
export class SmtpClient {
  #conn: Deno.Conn;
  #buffer = "";
  #timeoutMs: number;

  private constructor(conn: Deno.Conn, timeoutMs: number) {
    this.#conn = conn;
    this.#timeoutMs = timeoutMs;
  }

  /** Connects and reads the greeting. */
  static async connect(
    options: SmtpClientOptions,
  ): Promise<{ client: SmtpClient; greeting: SmtpReply }> {
    const hostname = options.hostname ?? "127.0.0.1";
    let conn: Deno.Conn = await Deno.connect({ hostname, port: options.port });
    if (options.implicitTlsCaCert !== undefined) {
      conn = await Deno.startTls(conn as Deno.TcpConn, {
        hostname: "localhost",
        caCerts: [options.implicitTlsCaCert],
      });
    }
    const client = new SmtpClient(conn, options.replyTimeoutMs ?? 15_000);
    try {
      const greeting = await client.read();
      return { client, greeting };
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string): Promise<SmtpReply> {
    await this.write(encoder.encode(line + "\r\n"));
    return await this.read();
  }

  /** Writes bytes as they are. */
  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  /** STARTTLS, then the TLS handshake trusting `caCert` for the name "localhost". */
  async startTls(caCert: string): Promise<SmtpReply> {
    const reply = await this.command("STARTTLS");
    if (reply.code !== 220) return reply;
    await this.upgradeToTls(caCert);
    return reply;
  }

  /**
   * The TLS handshake alone, after the caller sent STARTTLS (possibly with more behind it) and
   * read the 220. Throws if the server sent anything after the 220 in plaintext.
   */
  async upgradeToTls(caCert: string): Promise<void> {
    if (this.#buffer !== "") {
      throw new Error(
        `Cannot start TLS as the server sent data early: ${JSON.stringify(this.#buffer)}`,
      );
    }
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "localhost",
      caCerts: [caCert],
    });
  }

  /** Reads one complete (possibly multi-line) reply; closes the connection on a timeout. */
  async read(): Promise<SmtpReply> {
    const deadline = Date.now() + this.#timeoutMs;
    const chunk = new Uint8Array(64 * 1024);
    for (;;) {
      const reply = this.#takeReply();
      if (reply !== null) return reply;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      });
      const n = await Promise.race([this.#conn.read(chunk), timeout]).finally(() =>
        clearTimeout(timer)
      );
      if (n === "timeout") {
        // Closing also ends the read still pending on the socket.
        this.close();
        throw new Error(
          `Cannot read an SMTP reply as none came within ${this.#timeoutMs} ms: ` +
            `buffered ${JSON.stringify(this.#buffer)}`,
        );
      }
      if (n === null) {
        throw new Error(
          `Cannot read an SMTP reply as the server closed the connection: ` +
            `buffered ${JSON.stringify(this.#buffer)}`,
        );
      }
      this.#buffer += new TextDecoder("latin1").decode(chunk.subarray(0, n));
    }
  }

  #takeReply(): SmtpReply | null {
    const taken = takeReply(this.#buffer);
    if (!taken) return null;
    this.#buffer = taken.rest;
    return taken.reply;
  }

  /** Sends QUIT if the connection is still open, then closes it. */
  async quit(): Promise<void> {
    try {
      await this.command("QUIT");
    } catch {
      // Already closed by the server.
    }
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
  await client.write(encoder.encode(".\r\n"));
  return await client.read();
}
