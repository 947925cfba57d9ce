/**
 * Free loopback TCP ports for servers a test starts in another process.
 *
 * @module
 */

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago.
 *
 * The kernel picks it (port 0) and we release it at once, so another process could take
 * it before the caller binds; on loopback in a test run that race is rare enough.
 */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("Cannot find a free port as none was returned");
  return port;
}

/**
 * Returns `count` distinct free ports: all are held open until the last is picked,
 * so the kernel cannot hand out the same port twice.
 */
export function freePorts(count: number): Promise<number[]> {
  const listeners: Deno.TcpListener[] = [];
  try {
    for (let i = 0; i < count; i++) {
      listeners.push(Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" }));
    }
    return Promise.resolve(listeners.map((listener) => listener.addr.port));
  } finally {
    for (const listener of listeners) listener.close();
  }
}
