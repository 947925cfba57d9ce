/**
 * The HTTP listener against slow and greedy clients, over raw TCP: half-sent headers and bodies
 * that trickle in lose their connection at the deadline, connections past the cap are closed
 * unanswered, and a normal request still gets through.
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";

const encoder = new TextEncoder();

interface Outcome {
  /** What the server sent before it closed, as text. */
  received: string;
  /** Milliseconds from the first byte written to the close; null if still open at `waitMs`. */
  closedAfterMs: number | null;
}

/** Opens a connection, writes `first`, then `drip` every `dripEveryMs`, until the server closes. */
async function hold(
  relay: Relay,
  first: string,
  options: { drip?: string; dripEveryMs?: number; waitMs: number },
): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.httpPort });
  const started = performance.now();
  if (first) await conn.write(encoder.encode(first));
  const timer = options.drip === undefined ? undefined : setInterval(() => {
    conn.write(encoder.encode(options.drip!)).catch(() => {});
  }, options.dripEveryMs ?? 500);
  let received = "";
  const buf = new Uint8Array(4096);
  const deadline = setTimeout(() => conn.close(), options.waitMs);
  let closedAfterMs: number | null = null;
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        closedAfterMs = performance.now() - started;
        break;
      }
      received += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    // Closed by the timer (still open at waitMs) or reset by the server.
    if (performance.now() - started < options.waitMs - 50) {
      closedAfterMs = performance.now() - started;
    }
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  return { received, closedAfterMs };
}

Deno.test("HTTP: half-sent headers get 408 and lose the connection at the headers deadline; a trickled body is dropped", async () => {
  await using relay = await startRelay({
    env: {
      POSTERN_HTTP_HEADERS_TIMEOUT: "2s",
      POSTERN_HTTP_MIN_BODY_RATE: "1000",
    },
  });
  const token = relay.adminToken;
  const [silent, half, dripped, slowBody] = await Promise.all([
    hold(relay, "", { waitMs: 20_000 }),
    hold(relay, "GET /v1/accounts HTTP/1.1\r\nHost: relay\r\n", { waitMs: 20_000 }),
    // Busy, never done: a header line now and then keeps the connection from ever going idle.
    hold(relay, "GET /v1/accounts HTTP/1.1\r\n", { drip: "X-A: b\r\n", waitMs: 20_000 }),
    // Headers at once, then 2 bytes a second of a 100 000-byte body.
    hold(
      relay,
      `POST /v1/accounts HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer ${token}\r\n` +
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
      { drip: " ", dripEveryMs: 500, waitMs: 30_000 },
    ),
  ]);
  for (const [name, o] of Object.entries({ silent, half, dripped })) {
    assert.ok(o.closedAfterMs !== null, `${name}: still open after 20 s`);
    // 2 s deadline, checked every 250 ms; generous for a loaded machine, far below 20 s.
    assert.ok(o.closedAfterMs < 10_000, `${name}: closed after ${o.closedAfterMs} ms`);
    assert.match(o.received, /^HTTP\/1\.1 408 /, `${name}: ${o.received}`);
  }
  assert.ok(slowBody.closedAfterMs !== null, "the slow body was still open after 30 s");
  // 2 s plus 1 s per 1000 bytes received (a few bytes): dropped within seconds.
  assert.ok(slowBody.closedAfterMs < 15_000, `slow body closed after ${slowBody.closedAfterMs}`);
  await relay.waitForLog((l) => l.event === "http.slow_body");
  // The relay still answers.
  const ok = await relay.api("/v1/accounts", { method: "GET" });
  assert.equal(ok.status, 200);
});

Deno.test("HTTP: connections past POSTERN_HTTP_MAX_CONNECTIONS are closed unanswered, and once they go a request gets through", async () => {
  const CAP = 20;
  const ATTACKERS = 60;
  await using relay = await startRelay({
    env: { POSTERN_HTTP_MAX_CONNECTIONS: String(CAP), POSTERN_HTTP_HEADERS_TIMEOUT: "60s" },
  });
  // Slow clients: each sends the start of a request and holds.
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < ATTACKERS; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.httpPort });
    await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\n")).catch(() => {});
    conns.push(conn);
  }
  // Which of them did the server close? A read on a closed one ends (null or reset) at once.
  const open = await Promise.all(conns.map(async (conn) => {
    const buf = new Uint8Array(512);
    const read = conn.read(buf).then((n) => n !== null, () => false);
    const still = new Promise<boolean>((r) => setTimeout(() => r(true), 3_000));
    return await Promise.race([read, still]);
  }));
  const kept = open.filter(Boolean).length;
  assert.ok(kept <= CAP, `${kept} of ${ATTACKERS} slow connections kept open, cap ${CAP}`);
  assert.ok(kept >= CAP - 2, `only ${kept} kept: the cap should admit about ${CAP}`);
  await relay.waitForLog((l) => l.event === "http.refused" && l.reason === "max_connections");
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
  // With the slow clients gone, a request is served again.
  let status = 0;
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = await relay.api("/v1/accounts", { method: "GET" }).then((r) => r.status, () => 0);
    if (status !== 200) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(status, 200);
});
