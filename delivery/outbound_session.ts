/**
 * One outbound SMTP connection, driven through nodemailer's low-level SMTPConnection (pipelined
 * MAIL/RCPT/DATA, TCP_NODELAY, its own dot-stuffing) rather than its Mail pipeline. Returns an
 * outcome per recipient; never touches the store.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { Readable } from "node:stream";
import { X509Certificate } from "node:crypto";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import type { PeerCheck, VerifiedBy } from "../core/policy/tls_requirement.ts";
import { matchTlsa } from "../core/policy/dane.ts";
import { applyReplyTimeouts, initialSocketTimeout, type ReplyTimeouts } from "./reply_timeouts.ts";
import { DATA_START, dotStuff } from "./dot_stuffing.ts";

export interface Target {
  host: string;
  port: number;
  /** The MX or smarthost name the address belongs to (Remote-MTA in DSNs). */
  name?: string;
  /** TLS from the first byte (RFC 8314, port 465) instead of STARTTLS. */
  implicitTls?: boolean;
}

export interface SessionOptions {
  heloName: string;
  localAddress?: string;
  /** TCP connect only: the next host is tried once it passes. */
  connectTimeoutMs: number;
  /** How long each step may wait for the server's reply (RFC 5321 §4.5.3.2). */
  timeouts: ReplyTimeouts;
  /** Never send in clear: defer when STARTTLS is missing or fails (when `peer` is unset). */
  requireTls?: boolean;
  /** What the peer must prove (core/policy/tls_requirement.ts); wins over `requireTls`. */
  peer?: PeerCheck;
  /** Trusted roots in PEM (POSTERN_CA_FILE); unset: the system's. */
  ca?: string[];
  /** SMTP AUTH (RFC 4954) at a smarthost, after STARTTLS. */
  auth?: { user: string; pass: string };
  /** Monotonic ms, for how long the connection sat idle; performance.now() unless a test sets it. */
  now?: () => number;
}

/**
 * A connection whose last transaction ended in a 250 within this long is reused without RSET: a
 * completed transaction leaves the server with no state to clear (RFC 5321 §4.1.1.4), and the
 * round trip was one of the writes and waits of every message on a hot connection. Older ones
 * still get RSET, which also proves the connection is alive before a transaction starts.
 */
const REUSE_WITHOUT_RSET_MS = 1_000;

const encoder = new TextEncoder();

interface SendStreamInternals {
  _socket?: { cork(): void; uncork(): void; writableHighWaterMark: number };
  _createSendStream(callback: unknown): DataStreamInternals;
}

/** nodemailer's DataStream, as far as its transform is replaced (see fastDataStream). */
interface DataStreamInternals {
  once(event: "end", fn: () => void): unknown;
  push(chunk: Uint8Array): boolean;
  inByteCount: number;
  outByteCount: number;
  /** The last byte of the data so far; false before the first. */
  lastByte: number | false;
  _transform(chunk: Uint8Array | string, encoding: string, done: () => void): void;
}

/**
 * nodemailer's send stream, sped up and made to leave in fewer writes:
 * - its dot-stuffing runs through delivery/dot_stuffing.ts (the same bytes out, a fraction of the
 *   CPU: nodemailer's own loop was a fifth of the main thread at 1 MB messages); its end (the
 *   final dot, from `lastByte`) is still its own;
 * - it writes a message's data and its final dot as two socket writes (two segments with
 *   TCP_NODELAY). A body small enough to sit in the socket's buffer whole is corked until the
 *   data stream ends, so both leave in one write; a larger one streams as before (corked, it
 *   would wait for a drain that never comes).
 */
function fastDataStream(conn: SMTPConnection): (size: number) => void {
  const c = conn as unknown as SendStreamInternals;
  let corkNext = false;
  const createSendStream = c._createSendStream.bind(c);
  c._createSendStream = (callback) => {
    const stream = createSendStream(callback);
    stream._transform = (chunk, _encoding, done) => {
      if (!chunk || chunk.length === 0) return done();
      const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
      const out = dotStuff(bytes, stream.lastByte === false ? DATA_START : stream.lastByte);
      stream.inByteCount += bytes.length;
      stream.outByteCount += out.length;
      stream.lastByte = bytes[bytes.length - 1]!;
      stream.push(out);
      done();
    };
    const socket = c._socket;
    if (corkNext && socket) {
      socket.cork();
      stream.once("end", () => socket.uncork());
    }
    corkNext = false;
    return stream;
  };
  return (size) => {
    const room = c._socket?.writableHighWaterMark ?? 0;
    corkNext = size + 5 < room; // the body, and at most "\r\n.\r\n"
  };
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
  tlsDetails?: TlsDetails;
}

/** What the TLS layer of a session was, for the attempt record and TLS reports. */
export interface TlsDetails {
  version: string;
  cipher: string;
  /** The peer proved who it is: a trusted chain naming it, or a TLSA match. */
  verified: boolean;
  verifiedBy?: VerifiedBy;
  /** Why an unverified peer is not (the chain or name error), for reports. */
  verifyError?: string;
}

/** A failure before any transaction: connect, greeting, EHLO or TLS. */
export class ConnectFailure extends Error {
  override name = "ConnectFailure";
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly responseCode: number | undefined,
    readonly tlsFailure: boolean,
    /** The RFC 8460 result type when the failure was about TLS. */
    readonly tlsResult?: string,
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
  readonly #now: () => number;
  readonly #nextBodySize: (size: number) => void;
  /** When the last transaction ended in a 250 (see REUSE_WITHOUT_RSET_MS); null: not clean. */
  #cleanSince: number | null = null;
  deliveries = 0;
  readonly info: SessionInfo;
  /** The TLS policy this session was checked against; reuse only for jobs under the same. */
  policyKey = "plain";

  private constructor(conn: SMTPConnection, info: SessionInfo, now: () => number) {
    this.#conn = conn;
    this.info = info;
    this.#now = now;
    this.#nextBodySize = fastDataStream(conn);
    conn.on("error", () => (this.#broken = true));
    conn.on("end", () => (this.#broken = true));
  }

  static open(target: Target, options: SessionOptions): Promise<OutboundSession> {
    const peer: PeerCheck = options.peer ??
      { kind: "any", required: options.requireTls === true };
    const name = target.name && !/^[0-9.]+$|:/.test(target.name) ? target.name : undefined;
    const conn = new SMTPConnection({
      host: target.host,
      port: target.port,
      secure: target.implicitTls === true,
      name: options.heloName,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      connectionTimeout: options.connectTimeoutMs,
      greetingTimeout: options.timeouts.greetingMs,
      socketTimeout: initialSocketTimeout(options.timeouts),
      ...(peer.kind === "none"
        ? { ignoreTLS: true }
        : peer.kind === "any" && !peer.required
        ? { opportunisticTLS: true }
        : { requireTLS: true }),
      ...(name ? { servername: name } : {}),
      tls: tlsOptions(peer, name, options.ca),
      logger: false,
    });
    applyReplyTimeouts(conn, options.timeouts);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: NodemailerError, result?: string) => {
        if (settled) return;
        settled = true;
        conn.close();
        const certificate = result !== undefined || CERT_ERROR.test(`${err.code} ${err.message}`);
        const tls = certificate || err.code === "ETLS" || /TLS|SSL|STARTTLS/i.test(err.message);
        reject(
          new ConnectFailure(
            err.message,
            err.code,
            err.responseCode,
            tls,
            result ?? (tls ? tlsResultOf(err) : undefined),
          ),
        );
      };
      conn.once("error", (err: NodemailerError) => fail(err));
      const ready = (details: TlsDetails | undefined) => {
        if (settled) return;
        settled = true;
        conn.removeListener("error", fail);
        // deno-lint-ignore no-explicit-any
        const socket = (conn as any)._socket;
        resolve(
          new OutboundSession(conn, {
            remoteHost: `${target.host}:${target.port}`,
            ...(target.name ? { remoteName: target.name } : {}),
            ...(socket?.localAddress ? { localAddress: String(socket.localAddress) } : {}),
            ...(details ? { tls: details.version, tlsDetails: details } : {}),
          }, options.now ?? (() => performance.now())),
        );
      };
      conn.connect(() => {
        if (settled) return;
        // deno-lint-ignore no-explicit-any
        const socket = (conn as any)._socket as TLSSocket | undefined;
        const checked = checkPeer(conn.secure ? socket : undefined, peer);
        // Before AUTH or MAIL: a peer that failed its check hears nothing more from us.
        if (!checked.ok) return fail(new Error(checked.reason), checked.result);
        if (!options.auth) return ready(checked.details);
        conn.login(options.auth, (err) => {
          if (err) fail(err as NodemailerError);
          else ready(checked.details);
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
    this.#cleanSince = null;
    this.#nextBodySize(body instanceof Uint8Array ? body.length : Infinity);
    const message = body instanceof Uint8Array ? body : Readable.from(body);
    return new Promise((resolve) => {
      this.#conn.send(
        { from, to: [...to], size, use8BitMime: true } as SMTPConnection.Envelope,
        message as unknown as Readable,
        (err, info) => {
          if (!err && info) {
            this.#cleanSince = this.#now();
            return resolve(this.#fromInfo(to, info));
          }
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

  /**
   * RSET between transactions keeps a reused connection clean after a failed one, and checks
   * that one idle for a while is still there; right after a 250 it is not needed.
   */
  reset(): Promise<boolean> {
    return new Promise((resolve) => {
      if (!this.usable) return resolve(false);
      const clean = this.#cleanSince;
      if (clean !== null && this.#now() - clean < REUSE_WITHOUT_RSET_MS) return resolve(true);
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

/** Node and OpenSSL codes of a certificate that did not verify. */
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|altnames|certificate/i;

/**
 * Only `may` and `encrypt` (`any`) take whatever certificate comes: opportunistic TLS encrypts
 * without authenticating (RFC 7435), as MX certificates rarely name their host. `dane` checks
 * the chain against TLSA records itself, after the handshake and before any command that
 * matters, since a DANE-EE certificate need not chain to any root.
 */
function tlsOptions(
  peer: PeerCheck,
  name: string | undefined,
  ca: string[] | undefined,
): ConnectionOptions {
  const roots = ca ? { ca } : {};
  if (peer.kind === "ca") {
    return { rejectUnauthorized: true, servername: peer.name, minVersion: "TLSv1.2", ...roots };
  }
  return {
    rejectUnauthorized: false, // level may or encrypt, or dane (checked in checkPeer)
    minVersion: "TLSv1.2",
    ...(name ? { servername: name } : {}),
    ...roots,
  };
}

type PeerResult =
  | { ok: true; details: TlsDetails | undefined }
  | { ok: false; reason: string; result: string };

/** The TLS layer's facts, and whether they satisfy `peer`. */
function checkPeer(socket: TLSSocket | undefined, peer: PeerCheck): PeerResult {
  if (!socket?.getProtocol) {
    if (peer.kind === "none" || (peer.kind === "any" && !peer.required)) {
      return { ok: true, details: undefined };
    }
    return {
      ok: false,
      reason: "STARTTLS required but not done",
      result: "starttls-not-supported",
    };
  }
  const version = String(socket.getProtocol() ?? "");
  const cipher = socket.getCipher?.()?.name ?? "";
  if (peer.kind === "dane") {
    const chain = peerChain(socket);
    const match = matchTlsa(peer.tlsa, chain, peer.names);
    if (!match.ok) {
      return {
        ok: false,
        reason: `DANE: ${match.reason} (TLSA of ${peer.names.join(", ")})`,
        result: "validation-failure",
      };
    }
    return { ok: true, details: { version, cipher, verified: true, verifiedBy: "dane" } };
  }
  const authorized = socket.authorized === true;
  const error = socket.authorizationError ? String(socket.authorizationError) : undefined;
  if (peer.kind === "ca") {
    // rejectUnauthorized already refused a bad chain or name; this is the belt to those braces.
    if (!authorized) {
      return {
        ok: false,
        reason: `certificate of ${peer.name} not verified: ${error}`,
        result: tlsResultOf({ message: error ?? "" }),
      };
    }
    return { ok: true, details: { version, cipher, verified: true, verifiedBy: peer.by } };
  }
  return {
    ok: true,
    details: {
      version,
      cipher,
      verified: authorized,
      ...(authorized ? { verifiedBy: "ca" as const } : {}),
      ...(error ? { verifyError: error } : {}),
    },
  };
}

/** The peer's chain as presented, leaf first. */
function peerChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  // deno-lint-ignore no-explicit-any
  let cert: any = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    out.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate;
  }
  return out;
}

/** RFC 8460 §4.3 result type for a TLS failure. */
export function tlsResultOf(err: { code?: string | undefined; message: string }): string {
  const text = `${err.code ?? ""} ${err.message}`;
  if (/EXPIRED/i.test(text)) return "certificate-expired";
  if (/ALTNAME|hostname|does not match/i.test(text)) return "certificate-host-mismatch";
  if (/SELF.SIGNED|UNABLE_TO|untrusted|not trusted|CERT/i.test(text)) {
    return "certificate-not-trusted";
  }
  if (/STARTTLS/i.test(text)) return "starttls-not-supported";
  return "validation-failure";
}
