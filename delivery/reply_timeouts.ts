/**
 * RFC 5321 §4.5.3.2 timeouts on nodemailer's SMTPConnection: how long each step may wait for the
 * server. nodemailer has one idle timeout for the whole session and cuts the greeting short by
 * what is left of the connect timeout, so a receiver that pauses its banner (a tarpit, Postfix's
 * postscreen_greet_wait) or takes minutes to acknowledge the final dot (content scanning) would
 * be given up, and the mail it kept sent again at the next retry.
 *
 * Instead of forking nodemailer, this keeps an idle timeout of the wait of the oldest reply
 * still owed, through the internal methods every command, every reply and every message body
 * pass through; the greeting gets its own time in place of what the connect left. The timeout
 * runs on the process's shared deadlines (core/net/deadlines.ts), not socket.setTimeout. The
 * timeouts are the RFC's minimums by default (core/config/outbound.ts), so a wait is never
 * shorter than the RFC's.
 *
 * @module
 */
import type SMTPConnection from "nodemailer/lib/smtp-connection";
import { IdleTimeout, sessionDeadlines } from "../core/net/deadlines.ts";

/** How long the server may take to answer each step, in milliseconds. */
export interface ReplyTimeouts {
  /** The 220 greeting, and a STARTTLS handshake (RFC: 5 min). */
  greetingMs: number;
  /** EHLO, STARTTLS, AUTH, RSET, QUIT: steps the RFC names no time for. */
  commandMs: number;
  /** MAIL FROM (RFC: 5 min). */
  mailMs: number;
  /** RCPT TO (RFC: 5 min). */
  rcptMs: number;
  /** DATA, until the 354 (RFC: 2 min). */
  dataMs: number;
  /** Each block of the message while it is sent (RFC: 3 min). */
  dataBlockMs: number;
  /** The reply to the final dot (RFC: 10 min). */
  dataDoneMs: number;
}

/** The internals of nodemailer's SMTPConnection this module drives. */
interface Internals {
  _socket?: unknown;
  _destroyed: boolean;
  _responseActions: unknown[];
  _remainingSetupTime(): number;
  _onConnect(): unknown;
  _onData(chunk: unknown): unknown;
  _onTimeout(): unknown;
  _upgradeConnection(callback: unknown): unknown;
  _sendCommand(str: unknown, logStr?: unknown): unknown;
  _processResponse(): unknown;
  _createSendStream(callback: unknown): {
    on(event: "data", fn: () => void): unknown;
    once(event: "end", fn: () => void): unknown;
  };
  once(event: "end", fn: () => void): unknown;
}

/** The wait for the reply to one command line. */
export function timeoutFor(command: string, t: ReplyTimeouts): number {
  const verb = command.slice(0, 4).toUpperCase();
  if (verb === "MAIL") return t.mailMs;
  if (verb === "RCPT") return t.rcptMs;
  if (verb === "DATA") return t.dataMs;
  if (command === ".") return t.dataDoneMs; // an empty message's end
  return t.commandMs;
}

/** The idle timeout the connection should start with: the greeting's or a command's. */
export function initialSocketTimeout(t: ReplyTimeouts): number {
  return Math.max(t.greetingMs, t.commandMs);
}

/** Gives `conn` a timeout per step; call before `connect()`. */
export function applyReplyTimeouts(conn: SMTPConnection, t: ReplyTimeouts) {
  const c = conn as unknown as Internals;
  // The wait for each reply still owed, oldest first. Pipelined commands (MAIL, RCPT, DATA in
  // one write) are answered in order, so the connection waits as long as the oldest one may.
  const owed: number[] = [];
  let streaming = false;
  // Before the greeting and during a TLS handshake nothing is owed that a command put there.
  const setupWait = initialSocketTimeout(t);
  let settingUp = false;
  const waitMs = () => streaming ? t.dataBlockMs : owed[0] ?? (settingUp ? setupWait : t.commandMs);

  // The idle timeout on the shared deadlines rather than socket.setTimeout, which makes a node
  // Timeout per change of wait (several per message on a reused connection) and refreshes it
  // at every read and write. A new wait counts from now, as socket.setTimeout did.
  const idle = new IdleTimeout(sessionDeadlines, waitMs, () => {
    if (!c._destroyed) c._onTimeout();
  });
  let watching = false;
  let lastWait = -1;
  const arm = () => {
    if (!watching) return;
    const ms = waitMs();
    if (ms === lastWait) return;
    lastWait = ms;
    idle.restart();
  };
  c.once("end", () => {
    watching = false;
    idle.stop();
  });
  neuterSocketTimeouts(c);

  // The greeting and a TLS handshake get their own time, not what the connect timeout left.
  c._remainingSetupTime = () => t.greetingMs;
  const onConnect = c._onConnect.bind(c);
  c._onConnect = () => {
    const result = onConnect();
    if (!c._destroyed) {
      watching = true;
      settingUp = true;
      arm();
    }
    return result;
  };
  const upgradeConnection = c._upgradeConnection.bind(c);
  c._upgradeConnection = (callback) => {
    settingUp = true;
    arm();
    return upgradeConnection(callback);
  };
  const onData = c._onData.bind(c);
  c._onData = (chunk) => {
    idle.touch();
    return onData(chunk);
  };
  const sendCommand = c._sendCommand.bind(c);
  c._sendCommand = (str, logStr) => {
    owed.push(timeoutFor(String(str ?? ""), t));
    settingUp = false;
    arm();
    idle.touch();
    return sendCommand(str, logStr);
  };
  const processResponse = c._processResponse.bind(c);
  c._processResponse = () => {
    const result = processResponse();
    // Each reply handled leaves one action fewer: what is owed is what is still queued.
    while (owed.length > c._responseActions.length) owed.shift();
    settingUp = false;
    arm();
    return result;
  };
  const createSendStream = c._createSendStream.bind(c);
  c._createSendStream = (callback) => {
    const stream = createSendStream(callback);
    owed.push(t.dataDoneMs); // the reply to the final dot, queued with the stream
    streaming = true;
    arm();
    // Each block of the body is handed to the socket as it is read from the stream.
    stream.on("data", () => idle.touch());
    stream.once("end", () => {
      streaming = false;
      arm();
    });
    return stream;
  };
}

/**
 * nodemailer arms the socket's own idle timeout when it connects and when it upgrades to TLS
 * (and clears it on close and before an upgrade): each socket it is handed gets a setTimeout
 * that does nothing, so only the deadline above counts.
 */
function neuterSocketTimeouts(c: Internals) {
  let current: unknown = c._socket;
  Object.defineProperty(c, "_socket", {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (socket: unknown) => {
      if (socket && typeof socket === "object") {
        const s = socket as { setTimeout: (ms: number) => unknown };
        // net.connect() armed one already (nodemailer passes it min(30 s, the connect timeout)):
        // left running, it ended every session at the first reply slower than that.
        s.setTimeout(0);
        s.setTimeout = idleSetTimeout;
      }
      current = socket;
    },
  });
}

function idleSetTimeout(this: unknown) {
  return this;
}
