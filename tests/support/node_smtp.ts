/**
 * An SMTP client on node:net / node:tls sockets, for tests that must choose the client's
 * source address (`localAddress`, e.g. 127.0.0.2 as "another client" on loopback): Deno.connect
 * cannot bind one. Line-oriented like SmtpClient; every wait gives up after a timeout, and a
 * closed connection is reported instead of hanging.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { takeReply } from "./smtp_reply.ts";

export interface NodeSmtpReply {
  code: number;
  lines: string[];
  raw: string;
}

export interface NodeSmtpOptions {
  port: number;
  /** The client's source address. @default the kernel's choice (127.0.0.1 on loopback) */
  localAddress?: string;
  /** Implicit TLS (SMTPS); the certificate is not verified. */
  implicitTls?: boolean;
  /** @default 20000 */
  timeoutMs?: number;
}

export class NodeSmtp {
  #socket: net.Socket;
  #buffer = "";
  #closed = false;
  #waiters = new Set<() => void>();
  #timeoutMs: number;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.#attach(socket);
  }

  /** Connects; the greeting is returned (or the refusal, e.g. a 421, and then the close). */
  static async connect(
    options: NodeSmtpOptions,
  ): Promise<{ client: NodeSmtp; greeting: NodeSmtpReply }> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const base = {
        host: "127.0.0.1",
        port: options.port,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      };
      const s: net.Socket = options.implicitTls
        ? tls.connect(
          { ...base, rejectUnauthorized: false, servername: "localhost" },
          () => resolve(s),
        )
        : net.connect(base, () => resolve(s));
      s.once("error", reject);
    });
    const client = new NodeSmtp(socket, options.timeoutMs ?? 20_000);
    return { client, greeting: await client.read() };
  }

  #attach(socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#buffer += chunk.toString("latin1");
      this.#notify();
    });
    socket.on("error", () => {});
    socket.once("close", () => {
      this.#closed = true;
      this.#notify();
    });
  }

  #notify() {
    for (const waiter of [...this.#waiters]) waiter();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once the server has closed the connection; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = this.#timeoutMs): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!this.#closed) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`Cannot see the connection close within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.write(data, (err) => (err ? reject(err) : resolve()))
    );
  }

  async command(line: string): Promise<NodeSmtpReply> {
    await this.write(line + "\r\n");
    return await this.read();
  }

  /** The next complete reply. */
  read(): Promise<NodeSmtpReply> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const reply = this.#take();
        if (reply) return finish(() => resolve(reply));
        if (this.#closed) {
          finish(() =>
            reject(new Error(`Cannot read a reply as the server closed: ${this.#buffer}`))
          );
        }
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`No reply within ${this.#timeoutMs} ms`))),
        this.#timeoutMs,
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

  #take(): NodeSmtpReply | null {
    const taken = takeReply(this.#buffer);
    if (!taken) return null;
    this.#buffer = taken.rest;
    return taken.reply;
  }

  /** STARTTLS and the handshake (the certificate is not verified). */
  async startTls(): Promise<NodeSmtpReply> {
    const reply = await this.command("STARTTLS");
    if (reply.code !== 220) return reply;
    const plain = this.#socket;
    plain.removeAllListeners("data");
    const secured = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        { socket: plain, rejectUnauthorized: false, servername: "localhost" },
        () => resolve(s),
      );
      s.once("error", reject);
    });
    this.#socket = secured;
    this.#attach(secured);
    return reply;
  }

  /** AUTH PLAIN with one initial response. */
  authPlain(username: string, password: string): Promise<NodeSmtpReply> {
    const token = Buffer.from(`\0${username}\0${password}`, "utf8").toString("base64");
    return this.command(`AUTH PLAIN ${token}`);
  }

  async quit(): Promise<void> {
    if (!this.#closed) await this.command("QUIT").catch(() => {});
    this.close();
  }

  close(): void {
    this.#socket.destroy();
  }
}
