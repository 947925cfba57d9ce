/**
 * The few places where smtp-server's fixed behaviour is wrong for a submission relay. Everything
 * is gated on `postern` options of our own servers, so other SMTPServer instances (test sinks)
 * behave as shipped. Our servers' sessions run on our own connection (engine/connection.ts, which
 * has the patches to SMTPConnection below folded in) unless they ask for `engine: "smtp-server"`;
 * the patches to SMTPServer (7, 9, implicit TLS deadlines) apply to both.
 *
 * 1. smtp-server waits 100 ms before every greeting to catch early talkers (hard-coded in
 *    SMTPConnection.init). Apps that open a connection per message then cap at ~10 msg/s per
 *    session. Submission clients must authenticate or come from trusted networks, so instead of
 *    the pause we greet at once; `earlyTalkerPause: true` keeps it for untrusted listeners.
 * 2. AUTH is advertised in EHLO only once TLS is up (RFC 4954 §4: no plaintext passwords): EHLO
 *    runs with AUTH in the session's own `disabledCommands` (smtp-server's per-session option),
 *    which it drops again at once, so an AUTH sent anyway still hears smtp-server's 538 5.7.11
 *    "Must issue a STARTTLS command first" instead of a puzzling "command not recognized".
 * 3. Replies that already carry an RFC 3463 enhanced code (ours, from replies.ts) are sent as-is;
 *    smtp-server would otherwise prefix a generic code chosen from the numeric code alone.
 * 4. Source routes (`<@relay:user@example.org>`) are handed to our address checks as written.
 *    smtp-server strips them (RFC 5321 §4.1.2 allows that); instead of relaying to whatever is
 *    left, we refuse the address, as a relay that never routes on client instructions should.
 * 5. Session limits Postfix has and smtp-server lacks (core/config/limits.ts): errors per session
 *    (a wait per command past the soft limit, 421 at the hard limit, a delivered message resets
 *    the count), a whole-session deadline, a DATA deadline that grows with the bytes received
 *    (a minimum data rate), and a hard TLS handshake deadline for STARTTLS and implicit TLS.
 *    smtp-server's own timeouts only count idle time, which a client trickling one byte at a
 *    time resets forever (slowloris).
 * 6. A command line over the limit, and the connection-count refusal, answer with our replies.
 *    The line-too-long error is told apart by where it comes from (the parser's
 *    `_commandTooLong`, which we make return our own error class), not by its text.
 * 7. On an implicit-TLS listener the handshake comes before any session, and so before onConnect
 *    can count the client: a client's sockets are counted from the accept, and past its limit a
 *    new one is closed at once (nothing can be said before TLS), so one client's unfinished
 *    handshakes cannot fill the listener for everyone.
 * 8. Parsed MAIL FROM and RCPT TO addresses keep the path as the client wrote it (`written`):
 *    smtp-server turns an A-label domain into Unicode, and RFC 6531 §3.4 refuses a non-ASCII
 *    address only when the client wrote one without SMTPUTF8.
 * 9. What smtp-server asks of each accepted socket by a system call (TCP_NODELAY, its local
 *    address) is settled once per listener where the system allows (accepted_sockets.ts).
 * 10. The idle timeout of a session, the STARTTLS handshake deadline and the wait for the
 *    client to close after QUIT run on one shared timer (deadlines.ts) instead of node:timers
 *    Timeouts made per session and restarted at every read and write; the idle timeout counts
 *    from the last bytes read or written, as before. A STARTTLS handshake gets the idle timeout
 *    smtp-server would set on its TLS socket, as one wait on the same timer.
 *
 * Every private member used here is declared in smtp_server_internals.ts and checked when the
 * patches are applied: with a smtp-server that lacks one, the relay refuses to start. Each patch
 * has its own loopback test in smtp_server_patches_test.ts.
 */
import type { SMTPServer } from "smtp-server";
import { ENHANCED_OVERRIDES, replies } from "./replies.ts";
import {
  assertSmtpServerInternals,
  type ConnectionInternals as Conn,
  connectionPrototype as proto,
  type InternalsSample,
  type ParserInternals,
  sampleInstalledSmtpServer,
  type ServerInternals,
  serverPrototype as serverProto,
} from "./smtp_server_internals.ts";
import { applySingleContextTls } from "./tls_single_context.ts";
import { listenerSocketDefaults, primeAcceptedSocket } from "./accepted_sockets.ts";
import { IdleTimeout, sessionDeadlines } from "../core/net/deadlines.ts";
import { countReplyError } from "./error_count.ts";
import { installPosternEngine } from "./engine/install.ts";

/** smtp-server's idle timeout when none is set (its SOCKET_TIMEOUT). */
const SOCKET_TIMEOUT_MS = 60_000;
/** How long smtp-server waits for the client to close after it closed (its HALF_CLOSE_TIMEOUT). */
const HALF_CLOSE_MS = 5_000;

/** Session limits, from core/config/limits.ts; times in ms, rates in bytes per second. */
export interface SessionLimits {
  sessionTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0 = no DATA deadline beyond the idle timeout. */
  minDataRate: number;
  tlsHandshakeTimeoutMs: number;
  softErrorLimit: number;
  hardErrorLimit: number;
  errorSleepMs: number;
  /** 452 "too many recipients" replies that do not count as errors (Postfix: 1000). */
  recipientOvershoot: number;
}

export interface PosternServerOptions {
  earlyTalkerPause: boolean;
  authOnlyOverTls: boolean;
  /** Refuse source routes instead of stripping them (4 above). */
  refuseSourceRoutes?: boolean;
  /**
   * Implicit TLS: sockets one client address may hold, counted from the accept, before any
   * handshake (7 below); 0 = no limit.
   */
  tlsSocketsPerClient?: number;
  /** What a trusted-network address may hold instead (POSTERN_TRUSTED_MAX_CONNECTIONS). */
  trustedSockets?: { perClient: number; isTrusted: (address: string) => boolean };
  limits?: SessionLimits;
  /**
   * Which connection runs the sessions: ours (engine/connection.ts, the default) or
   * smtp-server's SMTPConnection with the patches below (kept for the differential test).
   */
  engine?: "smtp-server" | "postern";
}

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

function options(conn: Conn): PosternServerOptions | undefined {
  return conn._server?.options?.postern;
}

/** The error a command line over maxCommandLength is reported with (6 above). */
class CommandTooLong extends Error {
  override name = "CommandTooLong";
}

function limitsOf(conn: Conn): SessionLimits | undefined {
  return options(conn)?.limits;
}

/** Sends one of our replies (its text already carries the enhanced code). */
function sendReply(conn: Conn, r: { responseCode: number; message: string }) {
  conn.send(r.responseCode, r.message);
}

/** Whether the client waits for our answer (a handler or the message decision is pending). */
function awaitingUs(conn: Conn): boolean {
  return !!(conn._handlerPending || (conn._dataStream && conn._parser && !conn._parser._dataMode));
}

/** Socket errors smtp-server drops unreported outside a transaction (its QUIET_SOCKET_ERRORS). */
const QUIET_SOCKET_ERRORS = new Set(["ECONNRESET", "EPIPE"]);

/**
 * A client that resets the connection (many do right after QUIT) costs the node-compat socket a
 * formatted stack trace: destroy() reads `err.stack` of the read error, and formatting it is
 * most of what a whole session's parsing and replies cost. smtp-server drops that error unseen
 * outside a transaction (logged by a logger we disable, then `close()`), so there its stack is
 * set to the one line it would start with and never formatted. Inside a transaction the error
 * is reported, and keeps its stack.
 */
function skipStackOfQuietResets(conn: Conn) {
  const socket = conn._socket;
  const destroy = socket.destroy;
  socket.destroy = function (this: typeof socket, err?: Error & { code?: string }, ...rest) {
    if (
      err && QUIET_SOCKET_ERRORS.has(err.code ?? "") && !conn.session.envelope?.mailFrom &&
      conn._server.options.logger === false
    ) {
      err.stack = `${err.name}: ${err.message}`; // V8's setter stores it; nothing is formatted
    }
    return destroy.call(this, err, ...rest);
  };
}

/** Index of the first LF not preceded by CR, or -1. */
function firstBareLf(chunk: Uint8Array, lastWasCR: boolean): number {
  // Uint8Array's own indexOf: Buffer's (node-compat, in JS) costs more than the scan itself.
  const indexOf = Uint8Array.prototype.indexOf;
  for (let i = indexOf.call(chunk, 10); i >= 0; i = indexOf.call(chunk, 10, i + 1)) {
    if (i === 0 ? !lastWasCR : chunk[i - 1] !== 13) return i;
  }
  return -1;
}

/**
 * smtpd_forbid_bare_newline = reject covers command lines too: smtp-server splits commands on
 * /\r?\n/, so instead of letting "MAIL FROM:<a>\nRCPT TO:<b>" through we stop at the first bare
 * LF seen in command mode, let everything before it run, and if the session is still reading
 * commands then (not DATA, where intake answers 550 itself) reply 550 5.5.2 and disconnect.
 */
function rejectBareLfInCommands(conn: Conn, parser: ParserInternals) {
  const write = parser._write.bind(parser);
  let lastWasCR = false;
  parser._write = (chunk: Uint8Array, encoding: string, done: (err?: Error | null) => void) => {
    conn._posternIdle?.touch();
    if (parser._dataMode || chunk.length === 0) return write(chunk, encoding, done);
    const at = firstBareLf(chunk, lastWasCR);
    lastWasCR = chunk[chunk.length - 1] === 13;
    if (at < 0) return write(chunk, encoding, done);
    write(chunk.subarray(0, at), encoding, (err?: Error | null) => {
      if (err) return done(err);
      if (parser._dataMode) return write(chunk.subarray(at), encoding, done);
      sendReply(conn, replies.bareLineEnding("LF"));
      conn.close();
      done();
    });
  };
}

let applied = false;

/**
 * Applies the patches once per process. Throws SmtpServerMismatch (one line naming the installed
 * smtp-server version) when a member they need is missing or changed shape; `sample` is for the
 * test of that refusal.
 */
export function applySmtpServerPatches(
  sample: () => InternalsSample = sampleInstalledSmtpServer,
) {
  if (applied) return;
  assertSmtpServerInternals(sample());
  applied = true;
  applySingleContextTls();
  installPosternEngine();

  const init = proto.init;
  proto.init = function (this: Conn) {
    const o = options(this);
    if (!o) return init.call(this);
    armSessionDeadline(this);
    skipStackOfQuietResets(this);
    if (o.earlyTalkerPause) return init.call(this);
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max && this._server.connections.size > max) {
        return sendReply(this, replies.serverBusy(this.name));
      }
      this.connectionReady();
    });
  };

  const onClose = proto._onClose;
  proto._onClose = function (this: Conn) {
    clearTimeout(this._posternSessionTimer);
    clearTimeout(this._posternDataTimer);
    sessionDeadlines.cancel(this._posternTlsTimer);
    sessionDeadlines.cancel(this._posternTlsIdle);
    sessionDeadlines.cancel(this._posternCloseTimer);
    this._posternIdle?.stop();
    return onClose.call(this);
  };

  const armTimeout = proto._armTimeout;
  proto._armTimeout = function (this: Conn, socket: Conn["_socket"] = this._socket) {
    if (!options(this)) return armTimeout.call(this, socket);
    if (this._upgrading && socket !== this._socket) {
      // STARTTLS: the handshake gets what smtp-server's idle timeout on the new TLS socket
      // gave it (nothing read or written in clear resets that one, so it is one wait from
      // here), on the shared deadlines instead of a node Timeout made and cleared per session.
      // Once the handshake is done, the session's idle timeout is ours again (armed before
      // smtp-server's own 'secure' listener runs, as that one resumes reading commands).
      const wait = this._server.options.socketTimeout || SOCKET_TIMEOUT_MS;
      this._posternTlsIdle = sessionDeadlines.after(wait, () => {
        if (this._upgrading && !this._closed) this._onTimeout();
      });
      socket.once("secure", () => {
        sessionDeadlines.cancel(this._posternTlsIdle);
        if (!this._closed) armIdle(this);
      });
      return;
    }
    if (this._upgrading || socket !== this._socket) return armTimeout.call(this, socket);
    armIdle(this);
  };

  // smtp-server's close(), with its wait for the client to close on sessionDeadlines: a
  // node:timers Timeout per session cost more than the rest of closing.
  const close = proto.close;
  proto.close = function (this: Conn) {
    if (!options(this)) return close.call(this);
    const socket = this._socket;
    if (!socket.destroyed && socket.writable) socket.end();
    this._server.connections.delete(this);
    if (this._closing) return;
    this._closing = true;
    // Nothing the client sends from now on is answered: a command pipelined after QUIT never
    // runs, and the connection no longer counts against maxClients.
    if (this._parser) {
      socket.unpipe(this._parser as unknown as NodeJS.WritableStream);
      this._parser.isClosed = true;
    }
    // A paused socket never reads the client's FIN; what still arrives is discarded.
    if (!this._upgrading && !socket.destroyed) socket.resume();
    // Measured from here and never extended: a client trickling bytes cannot hold the socket.
    const wait = Math.min(this._server.options.socketTimeout || SOCKET_TIMEOUT_MS, HALF_CLOSE_MS);
    this._posternCloseTimer = sessionDeadlines.after(wait, () => {
      if (!this._socket.destroyed) this._socket.destroy();
    });
  };

  const ehlo = proto.handler_EHLO;
  proto.handler_EHLO = function (this: Conn, command: unknown, callback: () => void) {
    if (this.secure || !options(this)?.authOnlyOverTls) return ehlo.call(this, command, callback);
    const session = this.session;
    const own = session.disabledCommands;
    // The session's list replaces the server's, so it must carry the server's entries too.
    session.disabledCommands = [...(own ?? this._server.options.disabledCommands ?? []), "AUTH"];
    // Restored before the next command can run (a pipelined AUTH still hears 538).
    // Set back rather than deleted: a delete turns the session into a slow dictionary object
    // for the rest of the connection; smtp-server reads an undefined list as no list.
    const restore = () => {
      session.disabledCommands = own;
    };
    try {
      return ehlo.call(this, command, () => {
        restore();
        callback();
      });
    } finally {
      restore();
    }
  };

  const send = proto.send;
  proto.send = function (this: Conn, code: number, data: unknown, context?: unknown) {
    if (!options(this)) return send.call(this, code, data, context);
    this._posternIdle?.touch();
    countError(this, code, context);
    if (typeof data === "string" && ENHANCED_PREFIX.test(data)) {
      send.call(this, code, data, false);
    } else {
      const override = ENHANCED_OVERRIDES[code];
      if (override && typeof data === "string") {
        send.call(this, code, `${override} ${data}`, false);
      } else {
        send.call(this, code, data, context);
      }
    }
    const limits = limitsOf(this);
    const errors = this._posternErrors ?? 0;
    if (limits && code !== 421 && !this._closing && errors >= limits.hardErrorLimit) {
      sendReply(this, replies.tooManyErrors(this.name));
    }
  };

  // Past the soft error limit, the next command is read only after a pause (a tarpit).
  const onCommand = proto._onCommand;
  proto._onCommand = function (this: Conn, command: unknown, callback?: () => void) {
    const limits = limitsOf(this);
    if (!limits || typeof callback !== "function") return onCommand.call(this, command, callback);
    return onCommand.call(this, command, () => {
      if ((this._posternErrors ?? 0) > limits.softErrorLimit && limits.errorSleepMs > 0) {
        setTimeout(callback, limits.errorSleepMs);
      } else {
        callback();
      }
    });
  };

  const parseAddress = proto._parseAddressCommand;
  proto._parseAddressCommand = function (this: Conn, name: unknown, command: unknown) {
    const parsed = parseAddress.call(this, name, command);
    if (!parsed || !options(this)) return parsed;
    const text = String(command ?? "");
    // The first word after the colon, as the parser took it (a fresh object, ours to extend).
    const path = /\S+/.exec(text.slice(text.indexOf(":") + 1))?.[0] ?? "";
    const start = path.startsWith("<") ? 1 : 0;
    const end = path.length > start && path.endsWith(">") ? path.length - 1 : path.length;
    const written = Object.assign(parsed, { written: path.slice(start, end) });
    const route = start === 1 && path.charCodeAt(1) === 64 /* @ */
      ? /^<(@[^<>]*)>$/.exec(path)
      : null;
    if (route && options(this)?.refuseSourceRoutes) written.address = route[1]!;
    return written;
  };

  const dataHandler = proto.handler_DATA;
  proto.handler_DATA = function (this: Conn, command: unknown, callback: () => void) {
    const result = dataHandler.call(this, command, callback);
    const limits = limitsOf(this);
    if (
      limits && limits.minDataRate > 0 && this._dataStream && this._parser && this._parser._dataMode
    ) {
      armDataDeadline(this, limits);
    }
    return result;
  };

  const createParser = proto._createParser;
  proto._createParser = function (this: Conn) {
    const parser = createParser.call(this);
    if (options(this)) {
      rejectBareLfInCommands(this, parser);
      const tooLong = parser._commandTooLong.bind(parser);
      parser._commandTooLong = () => new CommandTooLong(tooLong().message);
      parser.removeAllListeners("error");
      parser.on("error", (err: Error) => {
        sendReply(
          this,
          err instanceof CommandTooLong
            ? replies.lineTooLong(this.name)
            : replies.protocolError(this.name),
        );
      });
    }
    return parser;
  };

  // STARTTLS: smtp-server times the handshake with the idle timeout, which every byte resets.
  const upgrade = proto.upgrade;
  proto.upgrade = function (this: Conn, callback: () => void, secureCallback?: () => void) {
    // During the handshake the TLS socket has smtp-server's own idle timeout (_armTimeout).
    this._posternIdle?.stop();
    this._posternIdle = undefined;
    const result = upgrade.call(this, callback, secureCallback);
    const limits = limitsOf(this);
    if (limits && limits.tlsHandshakeTimeoutMs > 0 && this._upgrading) {
      const raw = this._socket;
      this._posternTlsTimer = sessionDeadlines.after(limits.tlsHandshakeTimeoutMs, () => {
        if (this._upgrading && !raw.destroyed) raw.destroy();
      });
    }
    return result;
  };

  const acceptSocket = serverProto._acceptSocket;
  serverProto._acceptSocket = function (this: ServerInternals, socket, handshake) {
    const postern: PosternServerOptions | undefined = this.options?.postern;
    if (this._posternSocketDefaults) primeAcceptedSocket(socket, this._posternSocketDefaults);
    if (!handshake) return acceptSocket.call(this, socket, handshake);
    const address = String(socket.remoteAddress ?? "").replace(/^::ffff:/i, "");
    const trusted = postern?.trustedSockets;
    const limit = trusted?.isTrusted(address)
      ? trusted.perClient
      : postern?.tlsSocketsPerClient ?? 0;
    if (!(limit > 0)) return acceptSocket.call(this, socket, handshake);
    const counts: Map<string, number> = this._posternTlsSockets ??= new Map();
    const open = counts.get(address) ?? 0;
    if (open >= limit) {
      socket.on("error", () => {});
      socket.destroy();
      return false;
    }
    counts.set(address, open + 1);
    socket.once("close", () => {
      const left = (counts.get(address) ?? 1) - 1;
      if (left <= 0) counts.delete(address);
      else counts.set(address, left);
    });
    return acceptSocket.call(this, socket, handshake);
  };

  // Implicit TLS (465): the handshake happens before there is a connection object.
  const upgradeSocket = serverProto._upgrade;
  serverProto._upgrade = function (this: ServerInternals, socket, callback) {
    const limits = this.options?.postern?.limits;
    if (!limits || !(limits.tlsHandshakeTimeoutMs > 0)) {
      return upgradeSocket.call(this, socket, callback);
    }
    let settled = false;
    const timer = unrefTimeout(() => {
      if (!settled && !socket.destroyed) socket.destroy();
    }, limits.tlsHandshakeTimeoutMs);
    return upgradeSocket.call(this, socket, (err: unknown, tls?: unknown) => {
      settled = true;
      clearTimeout(timer);
      callback(err, tls);
    });
  };
}

/**
 * 9. Once listening: what smtp-server would ask of every accepted socket by a system call
 *    (TCP_NODELAY, the local address) is settled once for the listener (accepted_sockets.ts).
 */
export function primeListener(server: SMTPServer) {
  (server as unknown as ServerInternals)._posternSocketDefaults = listenerSocketDefaults(
    server.server as unknown as Parameters<typeof listenerSocketDefaults>[0],
  );
}

/** Counts a reply toward the session's error limits (error_count.ts). */
function countError(conn: Conn, code: number, context: unknown) {
  const limits = limitsOf(conn);
  if (limits) countReplyError(conn, code, context, limits.recipientOvershoot);
}

/**
 * The idle timeout of a session (plaintext, after STARTTLS, implicit TLS) on the shared
 * deadlines, with smtp-server's semantics: counted from the last bytes read or written (the
 * parser's reads and send() touch it), re-armed by _onTimeout while the client waits for us.
 */
function armIdle(conn: Conn) {
  const ms = conn._server.options.socketTimeout || SOCKET_TIMEOUT_MS;
  conn._posternIdle ??= new IdleTimeout(sessionDeadlines, () => ms, () => {
    if (!conn._closed) conn._onTimeout();
  });
  conn._posternIdle.restart();
}

function armSessionDeadline(conn: Conn) {
  const limits = limitsOf(conn);
  if (!limits || !(limits.sessionTimeoutMs > 0)) return;
  const expire = () => {
    if (conn._closing || conn._closed) return;
    if (awaitingUs(conn)) {
      // A decision of ours is pending (AUTH, the commit of a message): answer it first.
      conn._posternSessionTimer = unrefTimeout(expire, 1000);
      return;
    }
    sendReply(conn, replies.sessionTimeout(conn.name));
  };
  conn._posternSessionTimer = unrefTimeout(expire, limits.sessionTimeoutMs);
}

/**
 * DATA may take the idle timeout plus one second per `minDataRate` bytes received (Postfix's
 * smtpd_min_data_rate under smtpd_per_request_deadline): a client sending at the minimum rate
 * or faster never meets it, one trickling below it always does, however it spaces its bytes.
 */
function armDataDeadline(conn: Conn, limits: SessionLimits) {
  const parser = conn._parser;
  if (!parser) return;
  const started = performance.now();
  const check = () => {
    if (conn._closing || conn._closed || conn._parser !== parser || !parser._dataMode) return;
    const allowed = limits.idleTimeoutMs + (parser.dataBytes / limits.minDataRate) * 1000;
    const elapsed = performance.now() - started;
    if (elapsed >= allowed) {
      sendReply(conn, replies.dataTooSlow(conn.name));
      return;
    }
    conn._posternDataTimer = unrefTimeout(check, Math.min(1000, allowed - elapsed) + 1);
  };
  clearTimeout(conn._posternDataTimer);
  conn._posternDataTimer = unrefTimeout(check, Math.min(1000, limits.idleTimeoutMs) + 1);
}

/** A timer that does not keep the process alive (the session it guards may be the last). */
function unrefTimeout(run: () => void, ms: number): ReturnType<typeof setTimeout> {
  const timer = setTimeout(run, ms);
  (timer as { unref?: () => void }).unref?.();
  return timer;
}
