/**
 * One inbound SMTP session on our own listeners, in place of smtp-server's SMTPConnection (and
 * its SMTPStream parser and PassThrough per message). smtp-server's SMTPServer stays (listener,
 * implicit TLS, `connections`, close(), certificates); install.ts hands it this class for the
 * servers built with our `postern` options.
 *
 * It says and does what SMTPConnection 3.21.6 with smtp_server_patches.ts said and did: every
 * reply (code, enhanced code, text, order), the session object the callbacks read, the callback
 * semantics, STARTTLS, AUTH, the session limits. What it leaves out is what our listeners never
 * enable (XCLIENT, XFORWARD, PROXY, reverse DNS, DSN, LMTP, CRAM-MD5, the logger: install.ts
 * keeps smtp-server's connection for a server that asks for one of these) and the cost per
 * session: socket chunks go straight into a sans-IO parser (smtp_input.ts), the message goes to
 * the handler through a MessageStream instead of a PassThrough, and nothing is an EventEmitter.
 *
 * Ported from smtp-server 3.21.6 lib/smtp-connection.js and lib/sasl.js (MIT, Andris Reinman).
 *
 * @module
 */
import net, { type Socket } from "node:net";
import os from "node:os";
import tls from "node:tls";
import * as smtpConnection from "smtp-server/lib/smtp-connection.js";
import { normalizeIPv6 } from "smtp-server/lib/ipv6-normalize.js";
import {
  BARE_LF,
  DATA,
  DATA_END,
  LINE,
  lineText,
  NEED_MORE,
  SmtpInput,
  TOO_LONG,
} from "./smtp_input.ts";
import { MessageStream } from "./message_stream.ts";
import { CONTROL_CHARS, parseAddressCommand, type ParsedAddress } from "./address_command.ts";
import { ENHANCED_OVERRIDES, replies } from "../replies.ts";
import type { PosternServerOptions, SessionLimits } from "../smtp_server_patches.ts";
import { type Deadline, IdleTimeout, sessionDeadlines } from "../../core/net/deadlines.ts";
import { sessionId } from "./session_id.ts";
import { countReplyError } from "../error_count.ts";
import { SASL } from "./sasl.ts";
import { enhancedStatusCode } from "./status_codes.ts";

/** smtp-server's own helpers for a TLS socket it makes (exported, not declared in its types). */
const { normalizeTLSError, verifyPeerCertificate } = smtpConnection as unknown as {
  normalizeTLSError(err: Error | undefined, socket: unknown, remoteAddress?: string): Error;
  verifyPeerCertificate(socket: unknown, options: unknown): Error | null;
};

/** smtp-server's idle timeout when none is set (its SOCKET_TIMEOUT). */
const SOCKET_TIMEOUT_MS = 60_000;
/** How long to wait for the client to close after we closed (its HALF_CLOSE_TIMEOUT). */
const HALF_CLOSE_MS = 5_000;
const MAX_HELO_HOSTNAME_LENGTH = 300;
/** Pipelined commands run in one go before the event loop gets a turn (its MAX_SYNC_COMMANDS). */
const MAX_SYNC_COMMANDS = 100;
const TLS_SOCKET_OPTIONS = [
  "requestCert",
  "rejectUnauthorized",
  "NPNProtocols",
  "session",
  "requestOCSP",
];
const QUIET_SOCKET_ERRORS = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);
/** The resets whose stack is never formatted outside a transaction (smtp_server_patches.ts). */
const UNSTACKED_RESETS = new Set(["ECONNRESET", "EPIPE"]);
const MAIL_VALUE_PARAMS = ["BODY", "SIZE", "RET", "ENVID"];
const RCPT_VALUE_PARAMS = ["NOTIFY", "ORCPT"];
const CONTROL_CHARS_GLOBAL = new RegExp(CONTROL_CHARS.source, "g");
const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
const HTTP_REQUEST = /^(OPTIONS|GET|HEAD|POST|PUT|DELETE|TRACE|CONNECT) \/.* HTTP\/\d\.\d$/i;

/** Never set on our sessions (no XCLIENT, no XFORWARD): one empty map shared by all. */
const NO_PROXY_DATA: Map<string, unknown> = new Map();

type Done = () => void;
// deno-lint-ignore no-explicit-any
type Callback = (err?: any, result?: any) => void;
// deno-lint-ignore no-explicit-any
type AnyRecord = Record<string, any>;

/** What this needs of smtp-server's SMTPServer (its public members and a few private ones). */
export interface EngineServer {
  options: AnyRecord & { postern?: PosternServerOptions };
  connections: Set<unknown>;
  server: unknown;
  secureContext: Map<string, unknown>;
  _closeTimeout: unknown;
  onConnect(session: AnyRecord, callback: Callback): void;
  onSecure(socket: unknown, session: AnyRecord, callback: Callback): void;
  onAuth(auth: AnyRecord, session: AnyRecord, callback: Callback): void;
  onMailFrom(address: ParsedAddress, session: AnyRecord, callback: Callback): void;
  onRcptTo(address: ParsedAddress, session: AnyRecord, callback: Callback): void;
  onData(stream: MessageStream, session: AnyRecord, callback: Callback): void;
  onClose(session: AnyRecord, callback: Callback): void;
  _resolveSNI(servername: string, cb: Callback): void;
  _onError(err: Error): void;
  listenerCount(event: string): number;
  emit(event: string, ...args: unknown[]): boolean;
}

type Handler = (this: PosternConnection, command: string, callback: Done) => void;

/** smtp-server's normalization of a socket's address (no IPv4-mapped prefix, canonical IPv6). */
function normalizeAddress(raw: string | undefined): string {
  let address = (raw || "").toString().trim().replace(/^::ffff:/i, "");
  if (address.includes(":") && net.isIPv6(address)) address = normalizeIPv6(address);
  return address.toLowerCase();
}

function isAcceptableHeloHostname(hostname: string): boolean {
  return hostname.length <= MAX_HELO_HOSTNAME_LENGTH && !CONTROL_CHARS.test(hostname);
}

function socketTimeoutOf(options: AnyRecord): number {
  return options.socketTimeout || SOCKET_TIMEOUT_MS;
}

/** A timer that does not keep the process alive (the session it guards may be the last). */
function unrefTimeout(run: () => void, ms: number): ReturnType<typeof setTimeout> {
  const timer = setTimeout(run, ms);
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

function smtpWords(command: string): string[] {
  return command.trim().split(/\s+/);
}

export class PosternConnection {
  readonly id: string;
  readonly ignore: unknown;
  session: AnyRecord;
  name: string;
  secure: boolean;
  needsUpgrade = false;
  tlsOptions: unknown;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  clientHostname: string | false = false;
  openingCommand: string | false = false;
  hostNameAppearsAs: string | false = false;

  _server: EngineServer;
  _socket: Socket;
  _closing = false;
  _closed = false;
  _upgrading = false;
  _ready = false;
  _handlerPending = false;
  /** The message being received or waiting for its reply (SMTPConnection's _dataStream). */
  _dataStream: MessageStream | false | null = false;
  _transactionCounter = 0;
  _unauthenticatedCommands = 0;
  _unrecognizedCommands = 0;
  _maxAllowedUnauthenticatedCommands: number | false;
  _canEmitConnection = true;
  _nextHandler: ((command: string, callback: Done) => void) | false = false;
  _rcptIndex: Map<string, number> = new Map();

  // The session limits (smtp_server_patches.ts 5 and 10), under the names the patches used.
  _posternSessionTimer?: ReturnType<typeof setTimeout>;
  _posternDataTimer?: ReturnType<typeof setTimeout>;
  _posternCloseTimer?: Deadline;
  _posternIdle?: IdleTimeout | undefined;
  _posternTlsTimer?: Deadline;
  _posternTlsIdle?: Deadline;
  _posternErrors = 0;
  _posternOvershoot = 0;

  readonly #postern: PosternServerOptions;
  readonly #limits: SessionLimits | undefined;
  #input: SmtpInput;
  #pumping = false;
  #pumpAgain = false;
  /** A command is running (its handler has not called back). */
  #busy = false;
  /** The socket is paused because input waits behind a command or a message reader. */
  #socketPaused = false;
  /** The message reader holds a chunk: no more data until it takes it. */
  #dataHeld = false;
  /** 0: no message; 1: receiving; 2: received, waiting for the reply. */
  #dataPhase = 0;
  /** The reply to the message came before its end (its reader gave up). */
  #repliedEarly = false;
  /** The client sent its FIN (smtp-server runs a last unterminated line then). */
  #inputEnded = false;
  #syncCommands = 0;

  constructor(server: EngineServer, socket: Socket, options?: AnyRecord) {
    options = options || {};
    this.id = options.id || sessionId();
    this.ignore = options.ignore;
    this._server = server;
    this._socket = socket;
    if (typeof socket.setNoDelay === "function") socket.setNoDelay(true);
    const serverOptions = server.options;
    this.#postern = serverOptions.postern!;
    this.#limits = this.#postern.limits;
    this.session = { id: this.id };
    this.#input = this.#createInput();
    this.session.secure = this.secure = !!serverOptions.secure;
    this.tlsOptions = this.secure && (socket as unknown as tls.TLSSocket).getCipher
      ? (socket as unknown as tls.TLSSocket).getCipher()
      : false;
    this.localAddress = normalizeAddress(options.localAddress || socket.localAddress);
    this.localPort = Number(options.localPort || socket.localPort) || 0;
    this.remoteAddress = normalizeAddress(options.remoteAddress || socket.remoteAddress);
    this.remotePort = Number(options.remotePort || socket.remotePort) || 0;
    this._maxAllowedUnauthenticatedCommands = serverOptions.maxAllowedUnauthenticatedCommands ||
      10;
    this.name = serverOptions.name || os.hostname();
  }

  #createInput(): SmtpInput {
    return new SmtpInput(this._server.options.maxCommandLength || 16 * 1024, true);
  }

  // --- start -----------------------------------------------------------------------------------

  init() {
    this.#armSessionDeadline();
    this.#skipStackOfQuietResets();
    this.#setListeners();
    const max = this._server.options.maxClients;
    if (this.#postern.earlyTalkerPause) {
      if (max && this._server.connections.size > max) {
        return this.send(
          421,
          this.name + " Too many connected clients, try again in a moment",
          false,
        );
      }
      unrefTimeout(() => this.connectionReady(), 100);
      return;
    }
    if (max && this._server.connections.size > max) {
      return this.#reply(replies.serverBusy(this.name));
    }
    this.connectionReady();
  }

  connectionReady(next?: () => void) {
    if (this._closing || this._closed) return;
    this.clientHostname = "[" + this.remoteAddress + "]";
    this._resetSession();
    const server = this._server;
    server.onConnect(this.session, (err) => {
      if (err) return this._refuse(err, false);
      const greet = () => {
        this._ready = true;
        this.emitConnection();
        this._sendGreeting();
        if (typeof next === "function") next();
      };
      if (!this.session.secure) return greet();
      this.session.servername = (this._socket as unknown as { servername?: string }).servername;
      server.onSecure(this._socket, this.session, (err) => {
        if (err) return this._refuse(err, false);
        greet();
      });
    });
  }

  #setListeners() {
    const socket = this._socket;
    socket.on("close", this.#onCloseEvent);
    socket.on("error", this.#onSocketError);
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    this._armTimeout();
  }

  #onCloseEvent = () => this._onClose();
  #onSocketError = (err: Error) => this._onError(err);

  /**
   * A client that resets the connection (many do right after QUIT) would cost the node-compat
   * socket a formatted stack trace; outside a transaction nobody sees that error, so its stack
   * is set to its first line (smtp_server_patches.ts, skipStackOfQuietResets).
   */
  #skipStackOfQuietResets() {
    const socket = this._socket;
    const destroy = socket.destroy;
    const session = this.session;
    const quiet = this._server.options.logger === false;
    socket.destroy = function (this: Socket, err?: Error & { code?: string }, ...rest: unknown[]) {
      if (err && quiet && UNSTACKED_RESETS.has(err.code ?? "") && !session.envelope?.mailFrom) {
        err.stack = `${err.name}: ${err.message}`;
      }
      return (destroy as (...a: unknown[]) => Socket).call(this, err, ...rest);
    } as typeof socket.destroy;
  }

  // --- input -----------------------------------------------------------------------------------

  #onData = (chunk: Uint8Array) => {
    this._posternIdle?.touch();
    if (this._closing || this._upgrading) return;
    this.#input.push(chunk);
    if (this.#busy || this.#dataPhase === 2 || this.#dataHeld) {
      // Waiting behind a command or the message's reader: hold what came, read no more.
      if (!this.#socketPaused) {
        this.#socketPaused = true;
        this._socket.pause();
      }
      return;
    }
    this.#pump();
  };

  #onEnd = () => {
    this.#inputEnded = true;
    this.#pump();
  };

  #resumeSocket() {
    if (this.#socketPaused && !this._closing && !this._upgrading) {
      this.#socketPaused = false;
      this._socket.resume();
    }
  }

  /** Runs what the input holds, one command at a time, until it must wait. */
  #pump() {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      for (;;) {
        this.#pumpAgain = false;
        if (
          this._closing || this._closed || this._upgrading || this.#busy ||
          this.#dataPhase === 2 || this.#dataHeld
        ) {
          if (this.#pumpAgain) continue;
          return;
        }
        const input = this.#input;
        const event = input.next();
        if (event === NEED_MORE) {
          if (this.#pumpAgain) continue;
          if (this.#inputEnded && !input.dataMode && input.pending > 0) {
            // smtp-server runs a last line that never got its line ending, with no callback.
            this.#inputEnded = false;
            this._onCommand(lineText(input.takeRest()), null);
            return;
          }
          this.#syncCommands = 0;
          this.#resumeSocket();
          return;
        }
        if (event === LINE) {
          this.#busy = true;
          this._onCommand(lineText(input.line), this.#commandDone);
          if (this.#busy) return;
          if (++this.#syncCommands >= MAX_SYNC_COMMANDS) {
            this.#syncCommands = 0;
            this.#busy = true;
            setImmediate(this.#commandDone);
            return;
          }
          continue;
        }
        if (event === DATA) {
          this.#writeData(input.chunk);
          continue;
        }
        if (event === DATA_END) {
          this.#endData(input.chunk);
          continue;
        }
        if (event === TOO_LONG) {
          this.#reply(replies.lineTooLong(this.name));
          return;
        }
        if (event === BARE_LF) {
          // smtpd_forbid_bare_newline = reject covers command lines too (patches, 1 of 6).
          this.#reply(replies.bareLineEnding("LF"));
          this.close();
          return;
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #commandDone = () => {
    this.#busy = false;
    this.#pump();
  };

  #writeData(chunk: Uint8Array) {
    const stream = this._dataStream;
    if (!stream) return;
    this.#countData(stream);
    if (stream.destroyed || stream.writableEnded) return;
    if (!stream.write(chunk, this.#dataTaken)) this.#dataHeld = true;
  }

  #dataTaken = () => {
    this.#dataHeld = false;
    this.#pump();
  };

  #countData(stream: MessageStream) {
    const bytes = this.#input.dataBytes;
    stream.byteLength = bytes;
    if (bytes > this.#maxBytes) stream.sizeExceeded = true;
  }

  #maxBytes = Infinity;

  #endData(last: Uint8Array) {
    const stream = this._dataStream;
    this.#dataPhase = this.#repliedEarly ? 0 : 2;
    this.#repliedEarly = false;
    if (!stream) return;
    this.#countData(stream);
    stream.sizeExceeded = this.#input.dataBytes > this.#maxBytes;
    if (last.length > 0 && !stream.destroyed && !stream.writableEnded) {
      stream.write(last, this.#dataTaken);
      this.#dataHeld = false; // the message is complete: the reply, not the reader, comes next
    }
    stream.end();
  }

  /** The reply to the message was sent: commands again, once the message's end was read. */
  #continueAfterData() {
    if (this.#dataPhase === 2) {
      this.#dataPhase = 0;
      this.#pump();
    } else if (this.#dataPhase === 1) {
      this.#repliedEarly = true;
    }
  }

  // --- replies ---------------------------------------------------------------------------------

  /** Sends one of our replies (its text already carries the enhanced code). */
  #reply(r: { responseCode: number; message: string }) {
    this.send(r.responseCode, r.message);
  }

  send(code: number, data?: unknown, context?: unknown) {
    this._posternIdle?.touch();
    this.#countError(code, context);
    if (typeof data === "string" && ENHANCED_PREFIX.test(data)) {
      this.#write(code, data, false);
    } else {
      const override = ENHANCED_OVERRIDES[code];
      if (override && typeof data === "string") {
        this.#write(code, `${override} ${data}`, false);
      } else {
        this.#write(code, data, context);
      }
    }
    const limits = this.#limits;
    if (
      limits && code !== 421 && !this._closing && this._posternErrors >= limits.hardErrorLimit
    ) {
      this.#reply(replies.tooManyErrors(this.name));
    }
  }

  /** SMTPConnection.send: one reply, one write. */
  #write(code: number, data: unknown, context: unknown) {
    let payload: string;
    const enhancedCode = this.#enhancedCode(code, context);
    if (Array.isArray(data)) {
      const last = data.length - 1;
      payload = "";
      for (let i = 0; i <= last; i++) {
        if (i > 0) payload += "\r\n";
        payload += code + (i < last ? "-" : " ") + (enhancedCode ? enhancedCode + " " : "") +
          sanitize(data[i]);
      }
    } else {
      payload = String(code);
      if (enhancedCode) payload += " " + enhancedCode;
      if (data) payload += " " + sanitize(data);
    }
    if (code >= 400) this.session.error = payload;
    if (code === 334 && payload === "334") payload += " ";
    const socket = this._socket;
    if (!this._upgrading && socket && !socket.destroyed && socket.readyState === "open") {
      socket.write(payload + "\r\n");
    }
    if (code === 421) this.close();
  }

  #enhancedCode(code: number, context: unknown): string {
    if (context === false || this._server.options.hideENHANCEDSTATUSCODES) return "";
    return enhancedStatusCode(code, context);
  }

  /** Counts a reply toward the session's error limits (../error_count.ts). */
  #countError(code: number, context: unknown) {
    const limits = this.#limits;
    if (limits) countReplyError(this, code, context, limits.recipientOvershoot);
  }

  _refuse(err: AnyRecord, context?: unknown) {
    this.send(err.responseCode || 554, err.message, context);
    this.close();
  }

  _sendGreeting() {
    const options = this._server.options;
    this.send(
      220,
      this.name + " ESMTP" + (options.banner ? " " + options.banner : ""),
      false,
    );
  }

  // --- closing ---------------------------------------------------------------------------------

  close() {
    const socket = this._socket;
    if (!socket.destroyed && socket.writable) socket.end();
    this._server.connections.delete(this);
    if (this._closing) return;
    this._closing = true;
    // Nothing the client sends from now on is answered: a command pipelined after QUIT never
    // runs. A paused socket never reads the client's FIN; what still arrives is discarded.
    this.#input.discard();
    if (!this._upgrading && !socket.destroyed) {
      this.#socketPaused = false;
      socket.resume();
    }
    // Measured from here and never extended: a client trickling bytes cannot hold the socket.
    const wait = Math.min(socketTimeoutOf(this._server.options), HALF_CLOSE_MS);
    this._posternCloseTimer = sessionDeadlines.after(wait, () => {
      if (!this._socket.destroyed) this._socket.destroy();
    });
  }

  _onClose() {
    clearTimeout(this._posternSessionTimer);
    clearTimeout(this._posternDataTimer);
    sessionDeadlines.cancel(this._posternTlsTimer);
    sessionDeadlines.cancel(this._posternTlsIdle);
    sessionDeadlines.cancel(this._posternCloseTimer);
    this._posternIdle?.stop();
    this.#input.discard();
    if (this._dataStream) {
      const stream = this._dataStream;
      this._dataStream = null;
      // The client left in the middle of the message: the reader hears of it.
      if (!stream.writableEnded && !stream.destroyed) {
        const err = Object.assign(
          new Error("Connection closed before the message was received in full"),
          { code: "ECONNECTION" },
        );
        stream.destroy(stream.listenerCount("error") ? err : undefined);
      }
    }
    this._server.connections.delete(this);
    if (this._closed) return;
    this._closed = true;
    this._closing = false;
    setImmediate(() => this._server.onClose(this.session, () => false));
  }

  _onError(err: Error & { code?: string; remoteAddress?: string }) {
    err.remoteAddress = this.remoteAddress;
    if (
      err.code && QUIET_SOCKET_ERRORS.has(err.code) &&
      (!this.session.envelope || !this.session.envelope.mailFrom)
    ) {
      this.close();
      return;
    }
    this._server._onError(err);
  }

  // --- timeouts --------------------------------------------------------------------------------

  _onTimeout() {
    if (this._closing) {
      this._socket.destroy();
      return;
    }
    // The client waits for us (a handler, or the decision on a message): not idle.
    if (this.#awaitingUs()) {
      this._armTimeout();
      return;
    }
    this.send(421, "Timeout - closing connection");
  }

  #awaitingUs(): boolean {
    return this._handlerPending || (!!this._dataStream && this.#dataPhase === 2);
  }

  /** The idle timeout, on the shared deadlines, counted from the last bytes read or written. */
  _armTimeout() {
    const ms = socketTimeoutOf(this._server.options);
    this._posternIdle ??= new IdleTimeout(sessionDeadlines, () => ms, () => {
      if (!this._closed) this._onTimeout();
    });
    this._posternIdle.restart();
  }

  #armSessionDeadline() {
    const limits = this.#limits;
    if (!limits || !(limits.sessionTimeoutMs > 0)) return;
    const expire = () => {
      if (this._closing || this._closed) return;
      if (this.#awaitingUs()) {
        // A decision of ours is pending (AUTH, the commit of a message): answer it first.
        this._posternSessionTimer = unrefTimeout(expire, 1000);
        return;
      }
      this.#reply(replies.sessionTimeout(this.name));
    };
    this._posternSessionTimer = unrefTimeout(expire, limits.sessionTimeoutMs);
  }

  /**
   * DATA may take the idle timeout plus one second per `minDataRate` bytes received: a client
   * sending at the minimum rate or faster never meets it, one trickling below it always does.
   */
  #armDataDeadline(limits: SessionLimits) {
    const input = this.#input;
    const started = performance.now();
    const check = () => {
      if (this._closing || this._closed || this.#input !== input || !input.dataMode) return;
      const allowed = limits.idleTimeoutMs + (input.dataBytes / limits.minDataRate) * 1000;
      const elapsed = performance.now() - started;
      if (elapsed >= allowed) {
        this.#reply(replies.dataTooSlow(this.name));
        return;
      }
      this._posternDataTimer = unrefTimeout(check, Math.min(1000, allowed - elapsed) + 1);
    };
    clearTimeout(this._posternDataTimer);
    this._posternDataTimer = unrefTimeout(check, Math.min(1000, limits.idleTimeoutMs) + 1);
  }

  // --- commands --------------------------------------------------------------------------------

  _whenWritable(next: Done) {
    const socket = this._socket;
    if (socket.writableNeedDrain && !socket.destroyed) {
      socket.once("drain", next);
      return;
    }
    next();
  }

  /** What runs once the current command is done (the next command), or null. */
  #next: Done | null = null;
  #calledBack = false;

  /** Past the soft error limit, the next command is read only after a pause (a tarpit). */
  #tarpit = () => {
    const next = this.#next;
    if (!next) return;
    const limits = this.#limits;
    if (limits && this._posternErrors > limits.softErrorLimit && limits.errorSleepMs > 0) {
      setTimeout(next, limits.errorSleepMs);
    } else {
      next();
    }
  };

  /** The command is over: the next one is read once the replies so far are flushed. */
  #done = () => this._whenWritable(this.#tarpit);

  /** A command handler called back. */
  #handlerCallback = () => {
    this.#calledBack = true;
    this._handlerPending = false;
    return this.#done();
  };

  _onCommand(command: string, callback: Done | null) {
    this.#next = callback;
    const done = this.#done;
    const space = command.indexOf(" ");
    const commandName = (space < 0 ? command : command.slice(0, space)).toUpperCase();
    let handler: ((command: string, callback: Done) => void) | undefined;

    if (this._upgrading) return done();
    if (this._server._closeTimeout) return this.send(421, "Server shutting down", commandName);
    if (!this._ready) return this.send(421, this.name + " You talk too soon", commandName);
    if (HTTP_REQUEST.test(command)) {
      return this.send(421, "HTTP requests not allowed", commandName);
    }
    if (this._nextHandler) {
      handler = this._nextHandler;
      this._nextHandler = false;
    } else {
      if (commandName === "HELO" || commandName === "EHLO" || commandName === "LHLO") {
        this.openingCommand = commandName;
      }
      if (this._isSupported(commandName)) handler = HANDLERS[commandName];
    }
    if (!handler) {
      this._unrecognizedCommands++;
      if (this._unrecognizedCommands >= 10) {
        return this.send(421, "Error: too many unrecognized commands", commandName);
      }
      this.send(500, "Error: command not recognized", commandName);
      setImmediate(done);
      return;
    }
    const options = this._server.options;
    if (
      !this.session.user && this._isSupported("AUTH") && !options.authOptional &&
      commandName !== "AUTH" && this._maxAllowedUnauthenticatedCommands !== false
    ) {
      this._unauthenticatedCommands++;
      if (this._unauthenticatedCommands >= this._maxAllowedUnauthenticatedCommands) {
        return this.send(421, "Error: too many unauthenticated commands", commandName);
      }
    }
    if (
      !this.hostNameAppearsAs &&
      (commandName === "MAIL" || commandName === "RCPT" || commandName === "DATA" ||
        commandName === "AUTH")
    ) {
      this.send(503, "Error: send HELO/EHLO first");
      setImmediate(done);
      return;
    }
    if (
      !this.session.user && this._isSupported("AUTH") &&
      (commandName === "MAIL" || commandName === "RCPT" || commandName === "DATA") &&
      !options.authOptional
    ) {
      this.send(
        530,
        typeof options.authRequiredMessage === "string"
          ? options.authRequiredMessage
          : "Error: authentication Required",
      );
      setImmediate(done);
      return;
    }
    this.#calledBack = false;
    this._handlerPending = true;
    try {
      handler.call(this, command, this.#handlerCallback);
    } catch {
      if (!this.#calledBack) {
        this.send(451, "Error: internal server error");
        this.#handlerCallback();
      }
    }
  }

  _isSupported(command: string): boolean {
    return HANDLERS[command] !== undefined && !this.#isDisabled(command);
  }

  #isDisabled(command: string): boolean {
    const own = this.session.disabledCommands;
    if (Array.isArray(own)) {
      return own.some((entry) => (entry || "").toString().trim().toUpperCase() === command);
    }
    return this._server.options.disabledCommands.includes(command);
  }

  _resetSession() {
    const session = this.session;
    session.localAddress = this.localAddress;
    session.localPort = this.localPort;
    session.remoteAddress = this.remoteAddress;
    session.remotePort = this.remotePort;
    session.clientHostname = this.clientHostname;
    session.openingCommand = this.openingCommand;
    session.hostNameAppearsAs = this.hostNameAppearsAs;
    session.xClient = NO_PROXY_DATA;
    session.xForward = NO_PROXY_DATA;
    session.transmissionType = this._transmissionType();
    session.tlsOptions = this.tlsOptions;
    session.envelope = {
      mailFrom: false,
      rcptTo: [],
      requireTLS: false,
      bodyType: "7bit",
      smtpUtf8: false,
    };
    session.transaction = this._transactionCounter + 1;
    if (this._rcptIndex.size > 0) this._rcptIndex = new Map();
  }

  _transmissionType(): string {
    let type = "SMTP";
    if (this.openingCommand === "EHLO") type = "E" + type;
    if (this.secure) type += "S";
    if (this.session.user) type += "A";
    return type;
  }

  emitConnection() {
    if (!this._canEmitConnection) return;
    this._canEmitConnection = false;
    if (this._server.listenerCount("connect") === 0) return;
    this._server.emit("connect", {
      id: this.id,
      localAddress: this.localAddress,
      localPort: this.localPort,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      hostNameAppearsAs: this.hostNameAppearsAs,
      clientHostname: this.clientHostname,
    });
  }

  #heloResponse(): string {
    const format = this._server.options.heloResponse;
    if (!format) return this.name + " Nice to meet you, " + (this.clientHostname || "");
    const replacements = [this.name, this.clientHostname];
    let i = 0;
    return format.replace(/%s/g, () => replacements[i++] || "");
  }

  handler_EHLO(command: string, callback: Done) {
    const parts = smtpWords(command);
    const hostname = parts[1] || "";
    if (parts.length !== 2) {
      this.send(501, "Error: syntax: EHLO hostname", false);
      return callback();
    }
    if (!isAcceptableHeloHostname(hostname)) {
      this.send(501, "Error: Bad hostname syntax", false);
      return callback();
    }
    this.hostNameAppearsAs = hostname.toLowerCase();
    const options = this._server.options;
    const features: string[] = [];
    for (const feature of ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]) {
      if (!options["hide" + feature]) features.push(feature);
    }
    // AUTH is offered only once TLS is up when so configured (patches, 2).
    const authShown = this.secure || !this.#postern.authOnlyOverTls;
    if (
      authShown && options.authMethods.length && this._isSupported("AUTH") && !this.session.user
    ) {
      features.push(["AUTH"].concat(options.authMethods).join(" "));
    }
    if (!this.secure && this._isSupported("STARTTLS") && !options.hideSTARTTLS) {
      features.push("STARTTLS");
    }
    if (this.secure && !options.hideREQUIRETLS) features.push("REQUIRETLS");
    if (options.size) features.push("SIZE" + (options.hideSize ? "" : " " + options.size));
    this._resetSession();
    this.send(250, [this.#heloResponse(), ...features], false);
    callback();
  }

  handler_HELO(command: string, callback: Done) {
    const parts = smtpWords(command);
    const hostname = parts[1] || "";
    if (parts.length !== 2) {
      this.send(501, "Error: Syntax: HELO hostname", false);
      return callback();
    }
    if (!isAcceptableHeloHostname(hostname)) {
      this.send(501, "Error: Bad hostname syntax", false);
      return callback();
    }
    this.hostNameAppearsAs = hostname.toLowerCase();
    this._resetSession();
    this.send(250, this.#heloResponse(), false);
    callback();
  }

  handler_QUIT(_command: string, callback: Done) {
    this.send(221, "Bye");
    this.close();
    callback();
  }

  handler_NOOP(_command: string, callback: Done) {
    this.send(250, "OK");
    callback();
  }

  handler_RSET(_command: string, callback: Done) {
    this._resetSession();
    this.send(250, "Flushed");
    callback();
  }

  handler_HELP(_command: string, callback: Done) {
    this.send(214, "See https://tools.ietf.org/html/rfc5321 for details");
    callback();
  }

  handler_VRFY(command: string, callback: Done) {
    if (!smtpWords(command)[1]) {
      this.send(501, "Error: Syntax: VRFY address");
      return callback();
    }
    this.send(252, "Try to send something. No promises though");
    callback();
  }

  /** Never allowed here (install.ts keeps smtp-server's connection where it may be). */
  handler_XCLIENT(_command: string, callback: Done) {
    this.send(550, "Error: Not allowed", "NOT_AUTHORIZED");
    callback();
  }

  handler_XFORWARD(_command: string, callback: Done) {
    this.send(550, "Error: Not allowed", "NOT_AUTHORIZED");
    callback();
  }

  handler_WIZ(command: string, callback: Done) {
    const args = smtpWords(command);
    args.shift();
    const password = (args.shift() || "").toString();
    if (!password) {
      this.send(500, "You are no wizard!");
      return callback();
    }
    this.session.isWizard = true;
    this.send(200, "Please pass, oh mighty wizard");
    callback();
  }

  handler_SHELL(_command: string, callback: Done) {
    if (!this.session.isWizard) {
      this.send(500, "Mere mortals must not mutter that mantra");
      return callback();
    }
    this.send(500, "Error: Invoking shell is not allowed. This incident will be reported.");
    callback();
  }

  handler_KILL(_command: string, callback: Done) {
    this.send(500, "Can not kill Mom");
    callback();
  }

  handler_STARTTLS(command: string, callback: Done) {
    if (smtpWords(command).length > 1) {
      this.send(501, "Error: syntax: STARTTLS");
      return callback();
    }
    if (this.secure) {
      this.send(503, "Error: TLS already active");
      return callback();
    }
    this.send(220, "Ready to start TLS");
    this.upgrade(callback);
  }

  handler_AUTH(command: string, callback: Done) {
    const args = smtpWords(command);
    args.shift();
    const method = (args.shift() || "").toString().toUpperCase();
    const options = this._server.options;
    if (
      !this.secure && this._isSupported("STARTTLS") && !options.hideSTARTTLS &&
      !options.allowInsecureAuth
    ) {
      this.send(538, "Error: Must issue a STARTTLS command first");
      return callback();
    }
    if (this.session.user) {
      this.send(503, "Error: No identity changes permitted");
      return callback();
    }
    const mechanism = SASL[method];
    if (!options.authMethods.includes(method) || !mechanism) {
      this.send(504, "Error: Unrecognized authentication type");
      return callback();
    }
    mechanism.call(this, args, callback);
  }

  #rejectInvalidParams(parsed: ParsedAddress, keys: string[], callback: Done): boolean {
    const args = parsed.args;
    let error: string | undefined;
    if (parsed.duplicate) {
      error = "Error: duplicate " + parsed.duplicate + " parameter";
    } else if (args) {
      const valueless = keys.find((key) =>
        args[key] !== undefined && (typeof args[key] !== "string" || !args[key])
      );
      if (valueless) error = "Error: " + valueless + " parameter requires a value";
    }
    if (!error) return false;
    this.send(501, error);
    callback();
    return true;
  }

  #addressParsing() {
    return {
      lenient: !!this._server.options.lenientAddressParsing,
      refuseSourceRoutes: !!this.#postern.refuseSourceRoutes,
    };
  }

  handler_MAIL(command: string, callback: Done) {
    const parsed = parseAddressCommand("MAIL FROM", command, this.#addressParsing());
    this.emitConnection();
    if (!parsed) {
      this.send(501, "Error: Bad sender address syntax", "SENDER_SYNTAX_ERROR");
      return callback();
    }
    if (this.#rejectInvalidParams(parsed, MAIL_VALUE_PARAMS, callback)) return;
    if (this.session.envelope.mailFrom) {
      this.send(503, "Error: nested MAIL command");
      return callback();
    }
    const problem = this.#mailParamsProblem(parsed);
    if (problem) {
      this.send(problem[0], problem[1], problem[2]);
      return callback();
    }
    const args = parsed.args || {};
    const envelope = this.session.envelope;
    if (args.BODY) envelope.bodyType = (args.BODY as string).toLowerCase();
    if (args.SMTPUTF8 === true) envelope.smtpUtf8 = true;
    if (args.REQUIRETLS === true) envelope.requireTLS = true;
    this._server.onMailFrom(parsed, this.session, (err) => {
      if (err) {
        this.send(err.responseCode || 550, err.message);
        return callback();
      }
      this.session.envelope.mailFrom = parsed;
      this.send(250, "Accepted", "MAIL_FROM_OK");
      callback();
    });
  }

  /** smtp-server's _validateMailParams (DSN's RET is never offered here). */
  #mailParamsProblem(parsed: ParsedAddress): [number, string, string | undefined] | null {
    const args = parsed.args || {};
    const options = this._server.options;
    if (args.SIZE) {
      if (!/^\d{1,20}$/.test(args.SIZE as string)) {
        return [501, "Error: Bad message size syntax", undefined];
      }
      if (!options.hideSize && options.size && Number(args.SIZE) > options.size) {
        return [
          552,
          "Error: message exceeds fixed maximum message size " + options.size,
          "MESSAGE_TOO_BIG",
        ];
      }
    }
    if (args.BODY) {
      const bodyType = (args.BODY as string).toLowerCase();
      if (bodyType !== "7bit" && bodyType !== "8bitmime") {
        return [501, "Invalid BODY parameter value. Must be 7BIT or 8BITMIME", undefined];
      }
    }
    if (args.SMTPUTF8 !== undefined && args.SMTPUTF8 !== true) {
      return [501, "Invalid SMTPUTF8 parameter. This flag does not accept a value", undefined];
    }
    if (args.REQUIRETLS !== undefined) {
      if (!this.secure) return [530, "REQUIRETLS not permitted on non-TLS connections", undefined];
      if (args.REQUIRETLS !== true) {
        return [
          501,
          "Invalid REQUIRETLS parameter. This flag does not accept a value",
          undefined,
        ];
      }
    }
    return null;
  }

  handler_RCPT(command: string, callback: Done) {
    const parsed = parseAddressCommand("RCPT TO", command, this.#addressParsing());
    if (!parsed || !parsed.address) {
      this.send(501, "Error: Bad recipient address syntax", "MAILBOX_SYNTAX_ERROR");
      return callback();
    }
    if (this.#rejectInvalidParams(parsed, RCPT_VALUE_PARAMS, callback)) return;
    if (!this.session.envelope.mailFrom) {
      this.send(503, "Error: need MAIL command");
      return callback();
    }
    const addressKey = parsed.address.toLowerCase();
    const maxRecipients = Number(this._server.options.maxRecipients) || 0;
    if (
      maxRecipients && this.session.envelope.rcptTo.length >= maxRecipients &&
      !this._rcptIndex.has(addressKey)
    ) {
      this.send(452, "Error: too many recipients", "TOO_MANY_RECIPIENTS");
      return callback();
    }
    this._server.onRcptTo(parsed, this.session, (err) => {
      if (err) {
        this.send(err.responseCode || 550, err.message);
        return callback();
      }
      const rcptTo = this.session.envelope.rcptTo as ParsedAddress[];
      let index = this._rcptIndex.get(addressKey);
      if (
        index !== undefined &&
        !(rcptTo[index] && rcptTo[index]!.address.toLowerCase() === addressKey)
      ) {
        index = rcptTo.findIndex((rcpt) => rcpt.address.toLowerCase() === addressKey);
      }
      if (index !== undefined && index >= 0) {
        rcptTo[index] = parsed;
      } else {
        rcptTo.push(parsed);
        this._rcptIndex.set(addressKey, rcptTo.length - 1);
      }
      this.send(250, "Accepted", "RCPT_TO_OK");
      callback();
    });
  }

  handler_DATA(_command: string, callback: Done) {
    if (!this.session.envelope.rcptTo.length) {
      this.send(503, "Error: need RCPT command");
      return callback();
    }
    const options = this._server.options;
    const stream = new MessageStream();
    this._dataStream = stream;
    this.#maxBytes = (options.size && Number(options.size)) || Infinity;
    this.#input.startData();
    this.#dataPhase = 1;
    this.#repliedEarly = false;
    const close = (err: AnyRecord | null | undefined, message: unknown) => {
      this._dataStream = false;
      const bytes = this.#input.dataBytes;
      const size = Number(options.size) || 0;
      if (options.rejectOversized && size > 0 && bytes > size) {
        this.send(
          552,
          "Error: message exceeds fixed maximum message size " + options.size,
          "MESSAGE_TOO_BIG",
        );
      } else if (err) {
        this.send(err.responseCode || 450, err.message);
      } else {
        this.send(250, typeof message === "string" ? message : "OK: message queued", "DATA_OK");
      }
      this._transactionCounter++;
      this._unrecognizedCommands = 0;
      this._resetSession();
      this.#continueAfterData();
    };
    this._server.onData(stream, this.session, (err, message) => {
      if (this._dataStream && this._dataStream.readable) {
        const dataStream = this._dataStream;
        dataStream.once("end", () => close(err, message));
        // A handler that decided without reading the message: the rest is read and dropped.
        if (dataStream.readableFlowing === null) dataStream.resume();
        return;
      }
      close(err, message);
    });
    this.send(354, "End data with <CR><LF>.<CR><LF>");
    const limits = this.#limits;
    if (limits && limits.minDataRate > 0 && this._dataStream && this.#dataPhase === 1) {
      this.#armDataDeadline(limits);
    }
    callback();
  }

  // --- STARTTLS --------------------------------------------------------------------------------

  upgrade(callback: Done, secureCallback?: () => void) {
    // During the handshake the TLS socket has its own idle wait; the session's comes back after.
    this._posternIdle?.stop();
    this._posternIdle = undefined;
    const raw = this._socket;
    // Whatever came in clear after STARTTLS is never run (STARTTLS command injection).
    this.#input.discard();
    this.#input = this.#createInput();
    this._upgrading = true;
    raw.pause();
    this.#socketPaused = false;
    setImmediate(callback);

    const socketOptions = this.#tlsSocketOptions();
    raw.removeAllListeners();
    raw.on("error", (err) => this._onError(err));
    const tlsSocket = new tls.TLSSocket(raw, socketOptions as tls.TLSSocketOptions);
    const onError = (rawErr?: Error) => {
      const err = normalizeTLSError(rawErr, tlsSocket);
      if (!tlsSocket.destroyed) tlsSocket.destroy();
      if ((this._socket as unknown) !== tlsSocket && !this._socket.destroyed) {
        this._socket.destroy();
      }
      this._onError(err);
    };
    tlsSocket.once("close", () => this._onClose());
    tlsSocket.once("error", (err) => onError(err));
    tlsSocket.once("_tlsError", (err: Error) => onError(err));
    tlsSocket.once("clientError", (err: Error) => onError(err));
    // The handshake gets one idle wait from here, and a hard deadline (patches 5 and 10).
    const wait = socketTimeoutOf(this._server.options);
    this._posternTlsIdle = sessionDeadlines.after(wait, () => {
      if (this._upgrading && !this._closed) this._onTimeout();
    });
    const limits = this.#limits;
    if (limits && limits.tlsHandshakeTimeoutMs > 0) {
      this._posternTlsTimer = sessionDeadlines.after(limits.tlsHandshakeTimeoutMs, () => {
        if (this._upgrading && !raw.destroyed) raw.destroy();
      });
    }
    tlsSocket.once("secure", () => {
      sessionDeadlines.cancel(this._posternTlsIdle);
      if (this._closed) return;
      this._armTimeout();
      const verifyError = verifyPeerCertificate(tlsSocket, socketOptions);
      if (verifyError) {
        tlsSocket.destroy(verifyError);
        return;
      }
      this.session.secure = this.secure = true;
      this._socket = tlsSocket as unknown as Socket;
      this._upgrading = false;
      this.session.user = false;
      this.hostNameAppearsAs = false;
      this.openingCommand = false;
      this._resetSession();
      this.session.tlsOptions = this.tlsOptions = tlsSocket.getCipher();
      this.session.servername = (tlsSocket as unknown as { servername?: string }).servername;
      this._server.onSecure(this._socket, this.session, (err) => {
        if (this._closed) return;
        if (err) return this._refuse(err);
        tlsSocket.on("data", this.#onData);
        tlsSocket.on("end", this.#onEnd);
        if (typeof secureCallback === "function") secureCallback();
      });
    });
  }

  /**
   * smtp-server's options for a TLS socket it makes itself, without the SNICallback when the
   * listener serves one certificate (tls_single_context.ts says why).
   */
  #tlsSocketOptions(): AnyRecord {
    const server = this._server;
    const options: AnyRecord = {
      secureContext: server.secureContext.get("*"),
      isServer: true,
      server: server.server,
    };
    const oneContext = typeof server.options.SNICallback !== "function" &&
      server.secureContext.size === 1;
    if (!oneContext) {
      options.SNICallback = (servername: string, cb: Callback) =>
        server._resolveSNI(servername, cb);
    }
    for (const key of TLS_SOCKET_OPTIONS) {
      if (key in server.options) options[key] = server.options[key];
    }
    return options;
  }
}

function sanitize(line: unknown): string {
  const text = line === undefined || line === null ? "" : String(line);
  return CONTROL_CHARS.test(text) ? text.replace(CONTROL_CHARS_GLOBAL, " ") : text;
}

const HANDLERS: Record<string, Handler | undefined> = Object.assign(Object.create(null), {
  EHLO: PosternConnection.prototype.handler_EHLO,
  HELO: PosternConnection.prototype.handler_HELO,
  QUIT: PosternConnection.prototype.handler_QUIT,
  NOOP: PosternConnection.prototype.handler_NOOP,
  RSET: PosternConnection.prototype.handler_RSET,
  HELP: PosternConnection.prototype.handler_HELP,
  VRFY: PosternConnection.prototype.handler_VRFY,
  XCLIENT: PosternConnection.prototype.handler_XCLIENT,
  XFORWARD: PosternConnection.prototype.handler_XFORWARD,
  STARTTLS: PosternConnection.prototype.handler_STARTTLS,
  AUTH: PosternConnection.prototype.handler_AUTH,
  MAIL: PosternConnection.prototype.handler_MAIL,
  RCPT: PosternConnection.prototype.handler_RCPT,
  DATA: PosternConnection.prototype.handler_DATA,
  WIZ: PosternConnection.prototype.handler_WIZ,
  SHELL: PosternConnection.prototype.handler_SHELL,
  KILL: PosternConnection.prototype.handler_KILL,
});
