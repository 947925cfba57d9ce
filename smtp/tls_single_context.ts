/**
 * smtp-server gives every TLS socket it makes (STARTTLS, implicit TLS) an SNICallback, so that a
 * server with a certificate per name can pick one. Deno's node:tls reads that as "the context is
 * chosen after the ClientHello": it builds the socket's TLS configuration (PEM parsing, key
 * loading) from the default context as it creates the socket, then builds it again from the
 * context the callback returns, once per connection, 0.14 ms of CPU each on the bench's ECDSA
 * certificate (a fifth of the server's whole handshake). Our listeners serve one certificate
 * (POSTERN_TLS_CERT, replaced whole by updateTls), so their sockets are made without the
 * callback and configured once, from the same context: the same certificate, protocol versions
 * and ciphers, and a certificate reload still reaches the next handshake. A listener given
 * certificates per name (smtp-server's sniOptions or SNICallback) keeps the callback.
 *
 * The sockets are made by smtp-server's own `upgrade` (STARTTLS) and `_upgrade` (implicit TLS),
 * each synchronously, through `tls.TLSSocket`: for the length of those two calls, and only for
 * our listeners, that name refers to a constructor that drops the callback from the options.
 *
 * @module
 */
import tls from "node:tls";
import {
  type ConnectionInternals,
  connectionPrototype,
  type ServerInternals,
  serverPrototype,
} from "./smtp_server_internals.ts";

/** What this needs of an SMTPServer beyond smtp_server_internals.ts. */
interface ServerContexts {
  options: ServerInternals["options"] & { SNICallback?: unknown };
  /** smtp-server's contexts by server name; "*" is the default. */
  secureContext?: Map<string, unknown>;
}

type TlsSocketOptions = { isServer?: boolean; SNICallback?: unknown } | undefined;

const shipped = tls.TLSSocket;

/** `tls.TLSSocket`, but the sockets it makes have no SNICallback. */
const withoutSni: typeof shipped = new Proxy(shipped, {
  construct(target, args, newTarget): object {
    const [socket, options] = args as [unknown, TlsSocketOptions];
    const { SNICallback: _, ...rest } = options ?? {};
    return Reflect.construct(target, [socket, rest], newTarget === withoutSni ? target : newTarget);
  },
});

/** Our listener, with the one certificate it was given. */
function servesOneContext(server: ServerContexts): boolean {
  return server.options?.postern !== undefined &&
    typeof server.options.SNICallback !== "function" &&
    (server.secureContext?.size ?? 0) === 1;
}

function madeWithoutSni<T>(server: ServerContexts, make: () => T): T {
  if (!servesOneContext(server)) return make();
  (tls as { TLSSocket: unknown }).TLSSocket = withoutSni;
  try {
    return make();
  } finally {
    (tls as { TLSSocket: unknown }).TLSSocket = shipped;
  }
}

let applied = false;

/** Installs the above on smtp-server's prototypes; once per process. */
export function applySingleContextTls(): void {
  if (applied) return;
  applied = true;
  const upgrade = connectionPrototype.upgrade;
  connectionPrototype.upgrade = function (this: ConnectionInternals, callback, secureCallback) {
    const server = this._server as unknown as ServerContexts;
    return madeWithoutSni(server, () => upgrade.call(this, callback, secureCallback));
  };
  const upgradeSocket = serverPrototype._upgrade;
  serverPrototype._upgrade = function (this: ServerInternals, socket, callback) {
    const server = this as unknown as ServerContexts;
    return madeWithoutSni(server, () => upgradeSocket.call(this, socket, callback));
  };
}
