/**
 * The listener's stop, in process over raw TCP: connections with no request in progress are
 * closed at once (they held node:http's close until the grace ran out), a request in progress
 * still gets its whole response.
 */
import assert from "node:assert/strict";
import { serveHttp } from "./listener.ts";
import { createLogger } from "../core/log.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Everything the server sends until it closes the connection; fails if it is still open after
 * 30 s (a bound far below the listener's own deadlines, far above any stop's time).
 */
async function readToClose(conn: Deno.TcpConn): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const giveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn.close();
      reject(new Error("Cannot see the connection closed by the stop"));
    }, 30_000);
  });
  const read = async () => {
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf).catch(() => null); // a reset counts as closed
      if (n === null) return text;
      text += decoder.decode(buf.subarray(0, n));
    }
  };
  try {
    return await Promise.race([read(), giveUp]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("HTTP: a stop closes connections with no request in progress at once and lets a request in progress get its response", async () => {
  let entered!: () => void;
  const handlerEntered = new Promise<void>((r) => (entered = r));
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  const listener = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    log: createLogger({ write: () => {} }),
    // Deadlines far away: only the stop may close these connections.
    limits: { headersTimeoutMs: 600_000, requestTimeoutMs: 0, minBodyRate: 0, maxConnections: 0 },
    fetch: async () => {
      entered();
      await answered;
      return new Response("done");
    },
  });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  const silent = await connect();
  const halfSent = await connect();
  await halfSent.write(encoder.encode("GET /a HTTP/1.1\r\nHost: relay\r\n"));
  const busy = await connect();
  await busy.write(encoder.encode("GET /slow HTTP/1.1\r\nHost: relay\r\n\r\n"));
  await handlerEntered;

  const stopped = listener.shutdown();
  // Closed by the stop itself: nothing else would close them for ten minutes.
  assert.equal(await readToClose(silent), "");
  assert.equal(await readToClose(halfSent), "");
  answer();
  const response = await readToClose(busy);
  assert.match(response, /^HTTP\/1\.1 200 /);
  // The whole body, to its last chunk, before the close.
  assert.match(response, /\r\ndone\r\n0\r\n\r\n$/);
  await stopped;
  for (const c of [silent, halfSent, busy]) {
    try {
      c.close();
    } catch {
      // Already closed.
    }
  }
});
