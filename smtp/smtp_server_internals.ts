/**
 * The private members of smtp-server that smtp_server_patches.ts relies on, declared once, and
 * the start-up check that the installed smtp-server still has each of them with the shape the
 * patches expect. A minor release may rename or reshape a private method at any time; instead of
 * a relay that silently loses a session limit (or crashes on the first connection), the check
 * refuses to start with one line naming the installed version and the member that changed.
 *
 * @module
 */
import { Socket } from "node:net";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";
import { SMTPStream } from "smtp-server/lib/smtp-stream.js";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import smtpServerPackage from "smtp-server/package.json" with { type: "json" };
import type { PosternServerOptions } from "./smtp_server_patches.ts";
import type { ListenerSocketDefaults } from "./accepted_sockets.ts";
import type { Deadline, IdleTimeout } from "../core/net/deadlines.ts";

/** The smtp-server release the patches were written against and tested with. */
export const PATCHED_SMTP_SERVER_VERSION = "3.21.6";

/** The installed smtp-server's version, as its package.json says. */
export const installedSmtpServerVersion: string = smtpServerPackage.version;

type Done = (err?: Error | null) => void;

/** SMTPStream, the command/DATA reader of one connection. */
export interface ParserInternals {
  _dataMode: boolean;
  /** Set once the connection stops reading commands (closing, or retired by STARTTLS). */
  isClosed: boolean;
  /** Bytes of the current DATA received so far. */
  dataBytes: number;
  _write(chunk: Uint8Array, encoding: string, done: Done): void;
  /** Makes the error a command line over maxCommandLength is reported with. */
  _commandTooLong(): Error;
  on(event: "error", listener: (err: Error) => void): unknown;
  removeAllListeners(event: "error"): unknown;
}

/** SMTPServer, with our options and the state the patches keep on it. */
export interface ServerInternals {
  options: SMTPServerOptions & { postern?: PosternServerOptions };
  connections: Set<unknown>;
  _acceptSocket(socket: Socket, handshake: boolean): unknown;
  _upgrade(socket: Socket, callback: (err: unknown, tls?: unknown) => void): void;
  connect(socket: Socket, socketOptions?: Record<string, unknown>): void;
  _handleProxy(
    socket: Socket,
    callback: (err: Error | null, options?: Record<string, unknown>) => void,
  ): void;
  /** Ours: implicit-TLS sockets per client address, counted from the accept. */
  _posternTlsSockets?: Map<string, number>;
  /** Ours: what every socket of the listener starts with (accepted_sockets.ts). */
  _posternSocketDefaults?: ListenerSocketDefaults;
}

/** SMTPConnection, one client session. */
export interface ConnectionInternals {
  name: string;
  secure: boolean;
  session: SMTPServerSession & { disabledCommands?: string[] | undefined };
  _server: ServerInternals;
  _socket: Socket;
  _parser: ParserInternals | false;
  _dataStream: unknown;
  _closing: boolean;
  _closed: boolean;
  _upgrading: boolean;
  /** An application callback (onAuth, onMailFrom, onData…) has not answered yet. */
  _handlerPending: boolean;

  init(): void;
  connectionReady(next?: () => void): void;
  _setListeners(callback: () => void): void;
  _onClose(): void;
  /** Arms the idle timeout (socket.setTimeout) on `socket`, the session's own by default. */
  _armTimeout(socket?: Socket): void;
  /** The idle timeout fired: 421, unless the client waits for us. */
  _onTimeout(): void;
  send(code: number, data?: unknown, context?: unknown): void;
  close(): void;
  _onCommand(command: unknown, callback?: () => void): void;
  _parseAddressCommand(name: unknown, command: unknown): { address: string } | false;
  _createParser(): ParserInternals;
  handler_EHLO(command: unknown, callback: () => void): void;
  handler_DATA(command: unknown, callback: () => void): void;
  upgrade(callback: () => void, secureCallback?: () => void): void;

  // Ours: the session limits' timers and counters (smtp_server_patches.ts).
  _posternSessionTimer?: ReturnType<typeof setTimeout>;
  _posternDataTimer?: ReturnType<typeof setTimeout>;
  /** The wait for the client to close after we closed (smtp-server's _closeTimer). */
  _posternCloseTimer?: Deadline;
  /** The idle timeout of the session (of a TLS session once its handshake is done). */
  _posternIdle?: IdleTimeout | undefined;
  /** The STARTTLS handshake deadline. */
  _posternTlsTimer?: Deadline;
  /** The idle timeout during a STARTTLS handshake (smtp-server's, on the TLS socket). */
  _posternTlsIdle?: Deadline;
  _posternErrors?: number;
  _posternOvershoot?: number;
}

/** The prototypes the patches replace methods on. */
export const connectionPrototype = SMTPConnection.prototype as unknown as ConnectionInternals;
export const serverPrototype = SMTPServer.prototype as unknown as ServerInternals;

/** A method the patches wrap or call: its name and the parameters it must declare. */
type MethodShape = readonly [name: string, arity: number];

const CONNECTION_METHODS: readonly MethodShape[] = [
  ["init", 0],
  ["connectionReady", 1],
  ["_setListeners", 1],
  ["_onClose", 0],
  ["_armTimeout", 0],
  ["_onTimeout", 0],
  ["send", 3],
  ["close", 0],
  ["_onCommand", 2],
  ["_parseAddressCommand", 2],
  ["_createParser", 0],
  ["handler_EHLO", 2],
  ["handler_DATA", 2],
  ["upgrade", 2],
];
const SERVER_METHODS: readonly MethodShape[] = [
  ["_acceptSocket", 2],
  ["_upgrade", 2],
  // Where engine/install.ts hands a socket to our connection instead of SMTPConnection.
  ["connect", 2],
  ["_handleProxy", 2],
];
const PARSER_METHODS: readonly MethodShape[] = [["_write", 3], ["_commandTooLong", 0]];

/** Fields read on a fresh connection, and the type each must have there. */
const CONNECTION_FIELDS: readonly [string, string][] = [
  ["name", "string"],
  ["secure", "boolean"],
  ["session", "object"],
  ["_server", "object"],
  ["_socket", "object"],
  ["_parser", "object"],
  ["_closing", "boolean"],
  ["_closed", "boolean"],
  ["_upgrading", "boolean"],
  ["_handlerPending", "boolean"],
];
const SERVER_FIELDS: readonly [string, string][] = [["options", "object"], [
  "connections",
  "object",
]];
const PARSER_FIELDS: readonly [string, string][] = [
  ["_dataMode", "boolean"],
  ["isClosed", "boolean"],
  ["dataBytes", "number"],
];

/** What the check looks at; the real smtp-server unless a test hands it something else. */
export interface InternalsSample {
  version: string;
  connection: object;
  server: object;
  parser: object;
}

/**
 * A fresh server, connection and parser of the installed smtp-server, never listening: instance
 * fields only exist once the constructors ran.
 */
export function sampleInstalledSmtpServer(): InternalsSample {
  const server = new SMTPServer({ logger: false, disableReverseLookup: true });
  const connection = new SMTPConnection(server, new Socket());
  return {
    version: installedSmtpServerVersion,
    connection,
    server,
    parser: new SMTPStream({ maxCommandLength: 512 }),
  };
}

/** Every member that is missing or changed shape, as `Class.member (expected …, found …)`. */
export function internalsProblems(sample: InternalsSample): string[] {
  const problems: string[] = [];
  const methods = (what: string, target: object, shapes: readonly MethodShape[]) => {
    for (const [name, arity] of shapes) {
      const member = (target as Record<string, unknown>)[name];
      if (typeof member !== "function") {
        problems.push(`${what}.${name} (expected a method, found ${typeof member})`);
      } else if (member.length !== arity) {
        problems.push(
          `${what}.${name} (expected ${arity} parameters, found ${member.length})`,
        );
      }
    }
  };
  const fields = (what: string, target: object, shapes: readonly [string, string][]) => {
    for (const [name, type] of shapes) {
      const found = typeof (target as Record<string, unknown>)[name];
      if (found !== type) problems.push(`${what}.${name} (expected ${type}, found ${found})`);
    }
  };
  methods("SMTPConnection", sample.connection, CONNECTION_METHODS);
  fields("SMTPConnection", sample.connection, CONNECTION_FIELDS);
  methods("SMTPServer", sample.server, SERVER_METHODS);
  fields("SMTPServer", sample.server, SERVER_FIELDS);
  methods("SMTPStream", sample.parser, PARSER_METHODS);
  fields("SMTPStream", sample.parser, PARSER_FIELDS);
  return problems;
}

/** Raised when the installed smtp-server does not have what the patches need. */
export class SmtpServerMismatch extends Error {
  override name = "SmtpServerMismatch";
}

/** Throws SmtpServerMismatch (one line) unless every patched member is there as expected. */
export function assertSmtpServerInternals(sample: InternalsSample): void {
  const problems = internalsProblems(sample);
  if (problems.length === 0) return;
  throw new SmtpServerMismatch(
    `smtp-server ${sample.version} does not have the internals Postern patches ` +
      `(smtp/smtp_server_patches.ts, written for ${PATCHED_SMTP_SERVER_VERSION}): ` +
      `${problems.join("; ")}; install smtp-server ${PATCHED_SMTP_SERVER_VERSION} or update ` +
      `the patches`,
  );
}
