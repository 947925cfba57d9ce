/**
 * One outbound SMTP connection, driven through nodemailer's low-level SMTPConnection (pipelined
 * MAIL/RCPT/DATA, TCP_NODELAY, its own dot-stuffing) rather than its Mail pipeline. Returns an
 * outcome per recipient; never touches the store.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { Readable } from "node:stream";
import { applyReplyTimeouts, initialSocketTimeout, type ReplyTimeouts } from "./reply_timeouts.ts";

export interface Target {
  host: string;
  port: number;
  /** The MX or smarthost name the address belongs to (Remote-MTA in DSNs). */
  name?: string;
}

export interface SessionOptions {
  heloName: string;
  localAddress?: string;
  /** TCP connect only: the next host is tried once it passes. */
  connectTimeoutMs: number;
  /** How long each step may wait for the server's reply (RFC 5321 §4.5.3.2). */
  timeouts: ReplyTimeouts;
  /** Never send in clear: defer when STARTTLS is missing or fails. */
  requireTls: boolean;
  /** SMTP AUTH (RFC 4954) at a smarthost, after STARTTLS. */
  auth?: { user: string; pass: string };
}

export type OutcomeKind = "success" | "transient" | "permanent";

export interface RecipientOutcome {
  rcpt: string;
  kind: OutcomeKind;
  /** The remote reply, or a description of the local/connection failure. */
  reply: string;
  code?: number;
}

export interface SessionInfo {
  remoteHost: string;
  /** The MX or smarthost name. */
  remoteName?: string;
  localAddress?: string;
  tls?: string;
}

/** A failure before any transaction: connect, greeting, EHLO or TLS. */
export class ConnectFailure extends Error {
  override name = "ConnectFailure";
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly responseCode: number | undefined,
    readonly tlsFailure: boolean,
  ) {
    super(message);
  }
}

interface NodemailerError extends Error {
  code?: string | undefined;
  responseCode?: number | undefined;
  response?: string | undefined;
  recipient?: string | undefined;
  rejectedErrors?: NodemailerError[] | undefined;
}

function kindOf(code: number | undefined): OutcomeKind {
  if (code === undefined) return "transient";
  if (code >= 200 && code < 300) return "success";
  return code >= 500 ? "permanent" : "transient";
}

export class OutboundSession {
  #conn: SMTPConnection;
  #broken = false;
  deliveries = 0;
  readonly info: SessionInfo;

  private constructor(conn: SMTPConnection, info: SessionInfo) {
    this.#conn = conn;
    this.info = info;
    conn.on("error", () => (this.#broken = true));
    conn.on("end", () => (this.#broken = true));
  }

  static open(target: Target, options: SessionOptions): Promise<OutboundSession> {
    const conn = new SMTPConnection({
      host: target.host,
      port: target.port,
      secure: false,
      name: options.heloName,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      connectionTimeout: options.connectTimeoutMs,
      greetingTimeout: options.timeouts.greetingMs,
      socketTimeout: initialSocketTimeout(options.timeouts),
      ...(options.requireTls ? { requireTLS: true } : { opportunisticTLS: true }),
      // MX certificates are rarely valid for the MX name (RFC 7672 §1.3): opportunistic TLS
      // encrypts without authenticating, as every MTA does unless DANE or MTA-STS says more.
      tls: { rejectUnauthorized: false, minVersion: "TLSv1.2" },
      logger: false,
    });
    applyReplyTimeouts(conn, options.timeouts);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: NodemailerError) => {
        if (settled) return;
        settled = true;
        conn.close();
        const tls = err.code === "ETLS" || /TLS|SSL|STARTTLS/i.test(err.message);
        reject(new ConnectFailure(err.message, err.code, err.responseCode, tls));
      };
      conn.once("error", fail);
      const ready = () => {
        if (settled) return;
        settled = true;
        conn.removeListener("error", fail);
        // deno-lint-ignore no-explicit-any
        const socket = (conn as any)._socket;
        const tls = conn.secure && socket?.getProtocol ? String(socket.getProtocol()) : undefined;
        resolve(
          new OutboundSession(conn, {
            remoteHost: `${target.host}:${target.port}`,
            ...(target.name ? { remoteName: target.name } : {}),
            ...(socket?.localAddress ? { localAddress: String(socket.localAddress) } : {}),
            ...(tls ? { tls } : {}),
          }),
        );
      };
      conn.connect(() => {
        if (settled) return;
        if (!options.auth) return ready();
        conn.login(options.auth, (err) => {
          if (err) fail(err as NodemailerError);
          else ready();
        });
      });
    });
  }

  get usable(): boolean {
    return !this.#broken && !!this.#conn && (this.#conn as unknown as { _destroyed?: boolean })
          ._destroyed !== true;
  }

  /** Sends one transaction; every recipient gets an outcome, whatever happens. */
  send(
    from: string,
    to: readonly string[],
    body: Uint8Array | AsyncIterable<Uint8Array>,
    size: number,
  ): Promise<RecipientOutcome[]> {
    this.deliveries++;
    const message = body instanceof Uint8Array ? body : Readable.from(body);
    return new Promise((resolve) => {
      this.#conn.send(
        { from, to: [...to], size, use8BitMime: true } as SMTPConnection.Envelope,
        message as unknown as Readable,
        (err, info) => {
          if (!err && info) return resolve(this.#fromInfo(to, info));
          resolve(this.#fromError(to, (err ?? new Error("no result")) as NodemailerError));
        },
      );
    });
  }

  #fromInfo(to: readonly string[], info: SMTPConnection.SentMessageInfo): RecipientOutcome[] {
    const rejected = new Map<string, NodemailerError>();
    for (const e of (info.rejectedErrors ?? []) as NodemailerError[]) {
      if (e.recipient) rejected.set(e.recipient, e);
    }
    return to.map((rcpt) => {
      const e = rejected.get(rcpt);
      if (e) return this.#outcome(rcpt, e);
      return { rcpt, kind: "success", reply: String(info.response ?? "250"), code: 250 };
    });
  }

  #fromError(to: readonly string[], err: NodemailerError): RecipientOutcome[] {
    const perRecipient = new Map<string, NodemailerError>();
    for (const e of err.rejectedErrors ?? []) if (e.recipient) perRecipient.set(e.recipient, e);
    if (!err.responseCode) this.#broken = true; // the connection failed mid-transaction
    return to.map((rcpt) => this.#outcome(rcpt, perRecipient.get(rcpt) ?? err));
  }

  #outcome(rcpt: string, e: NodemailerError): RecipientOutcome {
    const reply = e.response ?? e.message;
    return e.responseCode
      ? { rcpt, kind: kindOf(e.responseCode), reply, code: e.responseCode }
      : { rcpt, kind: "transient", reply: `${e.code ?? "ERROR"}: ${e.message}` };
  }

  /** RSET between transactions keeps a reused connection clean after a failed one. */
  reset(): Promise<boolean> {
    return new Promise((resolve) => {
      if (!this.usable) return resolve(false);
      this.#conn.reset((err) => {
        if (err) this.#broken = true;
        resolve(!err);
      });
    });
  }

  /** QUIT, then close; resolves once the connection is gone (at most a second later). */
  close(): Promise<void> {
    const wasUsable = this.usable;
    this.#broken = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#conn.close();
        resolve();
      }, wasUsable ? 1000 : 0);
      this.#conn.once("end", () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        if (wasUsable) this.#conn.quit();
      } catch {
        // already gone
      }
    });
  }
}
