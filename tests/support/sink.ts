/**
 * A receiving SMTP server on loopback whose replies are scripted per recipient,
 * standing in for the remote MX hosts the relay delivers to.
 *
 * @module
 */

import type net from "node:net";
import type { Buffer } from "node:buffer";
import {
  SMTPServer,
  type SMTPServerDataStream,
  type SMTPServerError,
  type SMTPServerOptions,
  type SMTPServerSession,
} from "smtp-server";
import { loopbackCertificate } from "./tls_certificate.ts";

/** An SMTP reply: the code and the text after it. */
export interface SinkReply {
  code: number;
  message: string;
}

/**
 * How the sink answers one recipient:
 * - `"accept"`: 250 at RCPT and after DATA;
 * - `{ code, message }`: that reply to RCPT (a code below 400 accepts);
 * - `{ atData }`: accept RCPT, then that reply after the message data;
 * - `"hang"`: never answer RCPT, to test the relay's timeouts;
 * - `{ sequence }`: the n-th RCPT for this recipient uses the n-th entry, the last repeats.
 */
export type SinkBehavior =
  | "accept"
  | SinkReply
  | { atData: SinkReply }
  | "hang"
  | { sequence: SinkBehavior[] };

/** A message the sink accepted. */
export interface ReceivedMessage {
  /** MAIL FROM address; `""` for the null sender of bounces. */
  from: string;
  /** The recipients accepted at RCPT for this transaction. */
  to: string[];
  raw: Uint8Array;
  /** `raw` decoded as UTF-8, or as Latin-1 when it is not valid UTF-8. */
  text: string;
  /** The header block of `text`, without the blank line that ends it. */
  headers: string;
  remoteAddress: string;
  localPort: number;
  /** Whether the session had been upgraded with STARTTLS. */
  secure: boolean;
  /** The name the client gave in EHLO/HELO. */
  heloName: string;
  /** The user the client logged in as with AUTH, if it did. */
  user?: string;
  /** `Date.now()` when the data ended. */
  at: number;
}

export interface SinkOptions {
  /** @default 0 (a random free port) */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /**
   * STARTTLS, TLS from the first byte (`implicit`, as on port 465), or none.
   * @default "starttls" (a self-signed certificate unless `certificate` is given)
   */
  tls?: "starttls" | "implicit" | "none";
  /** The certificate (and key) to present, e.g. one from tests/support/test_ca.ts. */
  certificate?: { key: string; cert: string };
  /** Behaviour by lowercase recipient address. */
  behaviors?: Record<string, SinkBehavior>;
  /** @default "accept" */
  defaultBehavior?: SinkBehavior;
  /** Replaces the 220 greeting; a code of 400 or above refuses every session (e.g. 421). */
  greeting?: SinkReply;
  /**
   * Behaviour by the client's (source) address, ahead of the per-recipient one: a site that
   * rate-limits or blocks one of the relay's source addresses.
   */
  sourceBehaviors?: Record<string, SinkBehavior>;
  /** Advertise AUTH PLAIN/LOGIN and accept only this user and password (a smarthost). */
  auth?: { user: string; pass: string };
  /** The name in the greeting and EHLO reply. @default "sink.test" */
  name?: string;
  /** Wait this long before the 220 greeting (a tarpit, Postfix's postscreen_greet_wait). */
  greetingDelayMs?: number;
  /**
   * Awaited after the message data arrived and before the reply to the final dot, so a test
   * can hold replies (a slow receiver, or one held until a fault is in place).
   */
  dataGate?: () => Promise<void>;
}

/** A running {@linkcode startSink} instance. */
export interface Sink {
  port: number;
  host: string;
  messages: ReceivedMessage[];
  /** RCPT commands seen, by lowercase recipient. */
  attempts: Map<string, number>;
  /** TCP sessions accepted, so tests can assert connection reuse. */
  connections: number;
  /** TCP sessions open now, and the most that were ever open at once. */
  openConnections: number;
  maxOpenConnections: number;
  /** Every AUTH attempt, in order, with the password the client sent and whether over TLS. */
  authAttempts: { user: string; pass: string; secure: boolean }[];
  /** Each TCP session's life in `performance.now()` ms; `closedAt` unset while open. */
  connectionSpans: { openedAt: number; closedAt?: number }[];
  /** Every RCPT, in order, with the client's source address and EHLO name. */
  rcpts: { rcpt: string; remoteAddress: string; heloName: string; at: number; code: number }[];
  /** Replaces a recipient's behaviour; a new `sequence` starts again from its first entry. */
  setBehavior(rcpt: string, behavior: SinkBehavior): void;
  /** Resolves once `messages.length >= count`. @default timeoutMs 20000 */
  waitFor(count: number, options?: { timeoutMs?: number }): Promise<ReceivedMessage[]>;
  close(): Promise<void>;
}

/** Larger than any message the relay accepts, so the sink never refuses on size. */
const SIZE_LIMIT_BYTES = 60 * 1024 * 1024;
const DEFAULT_WAIT_MS = 20_000;

/** Starts a sink; it is listening when the promise resolves. */
export async function startSink(options: SinkOptions = {}): Promise<Sink> {
  const host = options.host ?? "127.0.0.1";
  const useTls = (options.tls ?? "starttls") !== "none";
  const behaviors = new Map<string, SinkBehavior>();
  for (const [rcpt, behavior] of Object.entries(options.behaviors ?? {})) {
    behaviors.set(rcpt.toLowerCase(), check_behavior(behavior));
  }
  const defaultBehavior = check_behavior(options.defaultBehavior ?? "accept");
  // RCPTs since the behaviour was last set, which indexes a `sequence`.
  const sequencePositions = new Map<string, number>();
  // The reply owed after DATA, by session id. SMTP gives one reply for all recipients of a
  // transaction, so the first recipient with an `atData` behaviour decides it.
  const dataReplies = new Map<string, SinkReply>();
  const sockets = new Set<net.Socket>();
  const waiters = new Set<() => void>();
  let closing: Promise<void> | undefined;
  /** Open TCP sessions by client address and port. */
  const open = new Map<string, { openedAt: number; closedAt?: number }>();
  const closed = (peer: string) => {
    const span = open.get(peer);
    if (!span) return;
    open.delete(peer);
    span.closedAt = performance.now();
    sink.openConnections--;
  };

  const sink: Sink = {
    port: 0,
    host,
    messages: [],
    attempts: new Map(),
    connections: 0,
    openConnections: 0,
    maxOpenConnections: 0,
    connectionSpans: [],
    rcpts: [],
    authAttempts: [],
    setBehavior(rcpt, behavior) {
      behaviors.set(rcpt.toLowerCase(), check_behavior(behavior));
      sequencePositions.delete(rcpt.toLowerCase());
    },
    waitFor(count, waitOptions = {}) {
      return wait_for_messages(sink, waiters, count, waitOptions.timeoutMs ?? DEFAULT_WAIT_MS);
    },
    close() {
      closing ??= close_server(server, sockets);
      return closing;
    },
  };

  const serverOptions: SMTPServerOptions = {
    name: options.name ?? "sink.test",
    size: SIZE_LIMIT_BYTES,
    authOptional: true,
    // No AUTH advertised: the relay must not try to log in to an MX.
    disabledCommands: [
      ...(options.auth ? [] : ["AUTH"]),
      ...(useTls ? [] : ["STARTTLS"]),
    ],
    authMethods: ["PLAIN", "LOGIN"],
    onAuth(auth, session, callback) {
      sink.authAttempts.push({
        user: auth.username ?? "",
        pass: auth.password ?? "",
        secure: session.secure,
      });
      const want = options.auth;
      if (want && auth.username === want.user && auth.password === want.pass) {
        return callback(null, { user: auth.username });
      }
      const error: SMTPServerError = new Error("Authentication credentials invalid");
      error.responseCode = 535;
      callback(error);
    },
    // The relay reuses sessions for many transactions; the default limit of 10 would cut them.
    maxAllowedUnauthenticatedCommands: false,
    disableReverseLookup: true,
    logger: false,
    // A client waiting on a held reply sends nothing; smtp-server's 60 s idle limit must not cut it.
    ...(options.greetingDelayMs || options.dataGate ? { socketTimeout: 15 * 60_000 } : {}),
    onConnect(_session, callback) {
      const greeting = options.greeting;
      if (greeting !== undefined && greeting.code >= 400) {
        return callback(smtp_error(greeting));
      }
      if (options.greetingDelayMs) {
        setTimeout(() => callback(), options.greetingDelayMs);
        return;
      }
      callback();
    },
    onMailFrom(_address, session, callback) {
      dataReplies.delete(session.id);
      callback();
    },
    onRcptTo(address, session, callback) {
      const rcpt = address.address.toLowerCase();
      sink.attempts.set(rcpt, (sink.attempts.get(rcpt) ?? 0) + 1);
      const position = (sequencePositions.get(rcpt) ?? 0) + 1;
      sequencePositions.set(rcpt, position);
      const bySource = options.sourceBehaviors?.[session.remoteAddress];
      const behavior = resolve_sequence(
        bySource ?? behaviors.get(rcpt) ?? defaultBehavior,
        position,
      );
      sink.rcpts.push({
        rcpt,
        remoteAddress: session.remoteAddress,
        heloName: session.hostNameAppearsAs,
        at: Date.now(),
        code: behavior === "accept" || behavior === "hang" || "atData" in behavior
          ? 250
          : behavior.code,
      });
      if (behavior === "hang") return; // The callback is never called, so RCPT gets no reply.
      if (behavior === "accept") return callback();
      if ("atData" in behavior) {
        if (!dataReplies.has(session.id)) dataReplies.set(session.id, behavior.atData);
        return callback();
      }
      callback(behavior.code >= 400 ? smtp_error(behavior) : null);
    },
    onData(stream, session, callback) {
      read_stream(stream).then(async (raw) => {
        if (options.dataGate) await options.dataGate();
        const reply = dataReplies.get(session.id);
        dataReplies.delete(session.id);
        if (reply !== undefined && reply.code >= 400) return callback(smtp_error(reply));
        sink.messages.push(received_message(raw, session));
        for (const notify of waiters) notify();
        callback(null, reply?.message);
      }, (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))));
    },
    onClose(session) {
      dataReplies.delete(session.id);
      // Under Deno a socket upgraded with STARTTLS never reports its own close: count it here.
      closed(`${session.remoteAddress}:${session.remotePort}`);
    },
  };
  if (useTls) Object.assign(serverOptions, options.certificate ?? await loopbackCertificate());
  if (options.tls === "implicit") serverOptions.secure = true;
  if (options.greeting !== undefined && options.greeting.code < 400) {
    serverOptions.banner = options.greeting.message;
  }

  const server = new SMTPServer(serverOptions);
  // Clients that drop the session (timeouts, `hang`) raise socket errors here; they are
  // the point of those tests, not failures of the sink.
  server.on("error", () => {});
  server.server.on("connection", (socket: net.Socket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    sink.connections++;
    sink.openConnections++;
    sink.maxOpenConnections = Math.max(sink.maxOpenConnections, sink.openConnections);
    const span = { openedAt: performance.now() };
    sink.connectionSpans.push(span);
    open.set(peer, span);
    socket.once("close", () => closed(peer));
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  const address = server.server.address();
  if (address === null || typeof address === "string") {
    throw new Error(`Cannot start the sink as it has no TCP address: current value is ${address}`);
  }
  sink.port = address.port;
  return sink;
}

/** Refuses an empty `sequence` up front; inside a server callback it could only crash. */
function check_behavior(behavior: SinkBehavior): SinkBehavior {
  if (typeof behavior === "string" || !("sequence" in behavior)) return behavior;
  if (behavior.sequence.length === 0) {
    throw new Error("Cannot use the sink behaviour as its sequence is empty");
  }
  behavior.sequence.forEach(check_behavior);
  return behavior;
}

/** Picks the entry of nested `sequence`s that applies to the `position`-th attempt. */
function resolve_sequence(
  behavior: SinkBehavior,
  position: number,
): Exclude<SinkBehavior, { sequence: SinkBehavior[] }> {
  if (typeof behavior === "string" || !("sequence" in behavior)) return behavior;
  const { sequence } = behavior;
  // check_behavior() guarantees at least one entry.
  const entry = sequence[Math.min(position, sequence.length) - 1] ?? "accept";
  return resolve_sequence(entry, position);
}

function smtp_error(reply: SinkReply): SMTPServerError {
  const error: SMTPServerError = new Error(reply.message);
  error.responseCode = reply.code;
  return error;
}

async function read_stream(stream: SMTPServerDataStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const raw = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    raw.set(chunk, offset);
    offset += chunk.length;
  }
  return raw;
}

function received_message(raw: Uint8Array, session: SMTPServerSession): ReceivedMessage {
  const text = decode_text(raw);
  const headerEnd = text.search(/\r?\n\r?\n/);
  const { mailFrom, rcptTo } = session.envelope;
  return {
    from: mailFrom === false ? "" : mailFrom.address,
    to: rcptTo.map((recipient) => recipient.address),
    raw,
    text,
    headers: headerEnd === -1 ? text : text.slice(0, headerEnd),
    remoteAddress: session.remoteAddress,
    localPort: session.localPort,
    secure: session.secure,
    heloName: session.hostNameAppearsAs,
    ...(session.user ? { user: String(session.user) } : {}),
    at: Date.now(),
  };
}

function decode_text(raw: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    // 8-bit mail in a legacy charset; Latin-1 maps every byte to one character.
    return new TextDecoder("latin1").decode(raw);
  }
}

function wait_for_messages(
  sink: Sink,
  waiters: Set<() => void>,
  count: number,
  timeoutMs: number,
): Promise<ReceivedMessage[]> {
  if (sink.messages.length >= count) return Promise.resolve(sink.messages);
  return new Promise((resolve, reject) => {
    const notify = () => {
      if (sink.messages.length < count) return;
      clearTimeout(timer);
      waiters.delete(notify);
      resolve(sink.messages);
    };
    const timer = setTimeout(() => {
      waiters.delete(notify);
      const attempts = JSON.stringify(Object.fromEntries(sink.attempts));
      reject(
        new Error(
          `Cannot wait for ${count} message(s) on sink port ${sink.port} as only ` +
            `${sink.messages.length} arrived within ${timeoutMs} ms: ` +
            `RCPT attempts ${attempts}, ${sink.connections} connection(s)`,
        ),
      );
    }, timeoutMs);
    waiters.add(notify);
  });
}

function close_server(server: SMTPServer, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Instead of waiting out smtp-server's 30 s grace period for open sessions (a client
    // stuck on a `hang` never leaves), end them now. A STARTTLS session lives on a TLS
    // socket layered over the accepted one, so destroy both.
    for (const connection of server.connections) connection._socket.destroy();
    for (const socket of sockets) socket.destroy();
  });
}
