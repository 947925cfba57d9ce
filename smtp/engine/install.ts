/**
 * Plugs PosternConnection (connection.ts) into smtp-server's SMTPServer: `connect` (which makes
 * the connection object for each accepted socket) makes ours for a server with our `postern`
 * options, unless it asks for `engine: "smtp-server"` or for something only smtp-server's
 * connection does (LMTP, XCLIENT, XFORWARD, PROXY, reverse DNS, DSN, a logger, an AUTH method
 * other than PLAIN, LOGIN and XOAUTH2). Everything else of SMTPServer stays as shipped and
 * patched: the listener, implicit TLS, `connections`, close(), updateSecureContext().
 *
 * @module
 */
import type { Socket } from "node:net";
import { type ServerInternals, serverPrototype } from "../smtp_server_internals.ts";
import { type EngineServer, PosternConnection } from "./connection.ts";
import { ENGINE_AUTH_METHODS } from "./sasl.ts";
import { sessionId } from "./session_id.ts";

type ProxyCallback = (err: Error | null, options?: Record<string, unknown>) => void;

interface EngineChoice {
  _posternEngine?: boolean;
  connect(socket: Socket, socketOptions?: Record<string, unknown>): void;
  _handleProxy(socket: Socket, callback: ProxyCallback): void;
}

/** Whether a server's sessions run on PosternConnection. */
export function usesPosternEngine(server: ServerInternals): boolean {
  const choice = server as unknown as EngineChoice;
  if (choice._posternEngine !== undefined) return choice._posternEngine;
  const o = server.options as ServerInternals["options"] & Record<string, unknown>;
  const postern = o.postern;
  const methods = (o.authMethods ?? []) as string[];
  const yes = !!postern && (postern.engine ?? "postern") === "postern" && !o.lmtp &&
    !o.useXClient && !o.useXForward && !o.useProxy && !o.needsUpgrade && !o.secured &&
    o.disableReverseLookup === true && o.hideDSN !== false && o.logger === false &&
    methods.every((m) => ENGINE_AUTH_METHODS.has(m));
  choice._posternEngine = yes;
  return yes;
}

let installed = false;

export function installPosternEngine() {
  if (installed) return;
  installed = true;
  const proto = serverPrototype as unknown as EngineChoice;
  const connect = proto.connect;
  proto.connect = function (this: EngineChoice, socket, socketOptions) {
    if (!usesPosternEngine(this as unknown as ServerInternals)) {
      return connect.call(this, socket, socketOptions);
    }
    const server = this as unknown as EngineServer;
    const connection = new PosternConnection(server, socket, socketOptions);
    server.connections.add(connection);
    connection.init();
  };
  // No PROXY header to read here (a server that expects one keeps smtp-server's connection):
  // the session's id, without smtp-server's hex and BigInt round trip.
  const handleProxy = proto._handleProxy;
  proto._handleProxy = function (this: EngineChoice, socket, callback) {
    if (!usesPosternEngine(this as unknown as ServerInternals)) {
      return handleProxy.call(this, socket, callback);
    }
    const options = (this as unknown as ServerInternals).options as Record<string, unknown>;
    const ignored = options.ignoredHosts as string[] | undefined;
    const socketOptions = {
      id: sessionId(),
      ignore: ignored && ignored.includes(socket.remoteAddress ?? ""),
    };
    setImmediate(() => callback(null, socketOptions));
  };
}
