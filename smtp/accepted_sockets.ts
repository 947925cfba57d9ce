/**
 * What smtp-server asks of every socket it accepts, answered once per listener instead of once
 * per socket. SMTPConnection sets TCP_NODELAY on each socket (a reply written behind another
 * must not wait for the client's delayed ACK) and reads its local address: a system call each,
 * on the main thread, which opens a connection per message at saturation.
 *
 * On Linux an accepted socket inherits TCP_NODELAY from its listening socket, so the listener
 * gets it once and each socket is marked as having it (node:net then skips the call); a listener
 * bound to one address knows the local address of every socket it accepts. Anywhere else, or
 * when node:net does not have what this relies on, every socket is left to smtp-server as is.
 *
 * @module
 */
import { Socket } from "node:net";

/** The local address node:net caches per socket (`socket._sockname`). */
interface SockName {
  address: string;
  family: string;
  port: number;
}

/** What every socket of one listener has from the start. */
export interface ListenerSocketDefaults {
  noDelay: boolean;
  sockname: SockName | null;
}

/** node:net's mark of a socket whose TCP_NODELAY is already as asked (Socket.setNoDelay). */
let noDelayMark: symbol | null | undefined;

function noDelaySymbol(): symbol | null {
  noDelayMark ??= Object.getOwnPropertySymbols(new Socket())
    .find((s) => s.description === "kSetNoDelay") ?? null;
  return noDelayMark;
}

const UNSPECIFIED = new Set(["0.0.0.0", "::", "::0"]);

interface ListeningServer {
  _handle?: { setNoDelay?: (on: boolean) => number } | null;
  address(): unknown;
}

/** Sets TCP_NODELAY on a listening node:net server and says what its sockets start with. */
export function listenerSocketDefaults(server: ListeningServer): ListenerSocketDefaults {
  const handle = server._handle;
  const noDelay = Deno.build.os === "linux" && noDelaySymbol() !== null &&
    typeof handle?.setNoDelay === "function" && handle.setNoDelay(true) === 0;
  const bound = server.address() as Partial<SockName> | null;
  const sockname = bound && typeof bound === "object" && typeof bound.address === "string" &&
      !UNSPECIFIED.has(bound.address) && typeof bound.port === "number"
    ? { address: bound.address, family: String(bound.family), port: bound.port }
    : null;
  return { noDelay, sockname };
}

/** Gives a freshly accepted socket what its listener already settled. */
export function primeAcceptedSocket(socket: Socket, defaults: ListenerSocketDefaults) {
  const s = socket as Socket & { _sockname?: SockName } & Record<symbol, unknown>;
  if (defaults.noDelay) s[noDelayMark!] = true;
  if (defaults.sockname && s._sockname === undefined) s._sockname = { ...defaults.sockname };
}
