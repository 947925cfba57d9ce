/**
 * The HTTP listener: node:http serving the Hono app. Deno.serve (2.9) has no deadline for a
 * request's headers, none for its body and no connection cap, so a client that sends half a
 * request, or a body a byte at a time, kept its connection forever. node:http under Deno is
 * Node's own server (llhttp over node:net) and enforces headersTimeout, requestTimeout and
 * maxConnections; the minimum body rate is watched here, as the SMTP side watches DATA.
 *
 * @module
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Readable } from "node:stream";
import type { Logger } from "../core/log.ts";
import { metrics } from "../core/metrics.ts";

export interface ListenerLimits {
  /** A request's headers must have arrived this long after it began (or the connection opened). */
  headersTimeoutMs: number;
  /** A whole request, headers and body, must have arrived within this; 0 = no deadline. */
  requestTimeoutMs: number;
  /** A body may take headersTimeoutMs plus one second per this many bytes received; 0 = off. */
  minBodyRate: number;
  /** Connections open at once; past it a new connection is closed unanswered; 0 = no cap. */
  maxConnections: number;
}

/** What the Hono app finds in `c.env`, as Deno.serve passed it. */
export interface ConnInfo {
  remoteAddr: { hostname: string; port: number };
}

export type FetchHandler = (req: Request, info: ConnInfo) => Response | Promise<Response>;

export interface HttpListener {
  port: number;
  /**
   * Stops accepting, lets requests in progress finish, and closes every connection without one
   * (idle keep-alive, or connected with no whole request yet) at once.
   */
  shutdown(): Promise<void>;
}

/** How often node:http looks for connections past their deadlines. */
const CHECK_INTERVAL_MS = 250;
/** How long an idle keep-alive connection is kept (node:http's default). */
const KEEP_ALIVE_MS = 5_000;

/** An IPv4 client on a dual-stack socket is reported as ::ffff:a.b.c.d; allow-lists want a.b.c.d. */
function plainAddress(address: string | undefined): string {
  if (!address) return "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/**
 * Drops the connection of a request whose body arrives slower than the limits allow: it may
 * take headersTimeoutMs plus one second per minBodyRate bytes received (Postfix's
 * smtpd_min_data_rate, as smtp_server_patches.ts applies it to DATA).
 */
function watchBodyRate(req: http.IncomingMessage, limits: ListenerLimits, log: Logger) {
  if (limits.minBodyRate <= 0 || req.complete) return;
  const started = performance.now();
  let received = 0;
  req.on("data", (chunk: Uint8Array) => received += chunk.length);
  const timer = setInterval(() => {
    if (req.complete || req.destroyed) return clearInterval(timer);
    const allowed = limits.headersTimeoutMs + received / limits.minBodyRate * 1000;
    if (performance.now() - started <= allowed) return;
    clearInterval(timer);
    metrics.limitRefusals.inc({ limit: "http_min_body_rate" });
    log.warn("http.slow_body", { client: plainAddress(req.socket.remoteAddress), received });
    req.socket.destroy();
  }, 1_000);
  req.once("close", () => clearInterval(timer));
}

/**
 * The URL as Deno.serve builds it, from the Host header: the dashboard's CSRF check compares a
 * form's Origin with it. A Host that makes no URL falls back to "localhost".
 */
function requestUrl(req: http.IncomingMessage): URL {
  const path = req.url ?? "/";
  try {
    return new URL(`http://${req.headers.host ?? "localhost"}${path}`);
  } catch {
    return new URL(path, "http://localhost");
  }
}

function toRequest(req: http.IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(requestUrl(req), {
    method,
    headers,
    signal,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: "half" } : {}),
  } as RequestInit);
}

/** How long an answered request's unread body is read and dropped before its connection is cut. */
const UNREAD_BODY_DRAIN_MS = 5_000;

async function writeResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Response,
) {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  // Answered before its body was read (a 413 while streaming, a 503 from the memory budget): the
  // rest of that body would be parsed as the next request on a kept-alive connection, and closing
  // at once with it unread would reset the connection and lose this answer at the client. So the
  // rest is read and dropped for a bounded time, then the connection is cut if it still has not
  // ended.
  if (!req.complete) {
    res.once("finish", () => {
      req.on("data", () => {});
      req.resume();
      const cut = setTimeout(() => req.socket.destroy(), UNREAD_BODY_DRAIN_MS);
      req.once("end", () => clearTimeout(cut));
      req.once("close", () => clearTimeout(cut));
    });
  }
  res.writeHead(response.status, headers);
  if (response.body === null) return void res.end();
  for await (const chunk of response.body) {
    if (res.destroyed) break;
    if (!res.write(chunk)) await new Promise((r) => res.once("drain", r).once("close", r));
  }
  res.end();
}

export async function serveHttp(options: {
  hostname: string;
  port: number;
  limits: ListenerLimits;
  log: Logger;
  fetch: FetchHandler;
}): Promise<HttpListener> {
  const { limits, log } = options;
  const server = http.createServer({
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    // node:http refuses a headers deadline later than the whole request's.
    headersTimeout: limits.requestTimeoutMs > 0
      ? Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs)
      : limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_MS,
  }, (req, res) => {
    requestStarted(req.socket, res);
    watchBodyRate(req, limits, log);
    const aborted = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborted.abort();
    });
    const socket = req.socket;
    const info: ConnInfo = {
      remoteAddr: { hostname: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 },
    };
    Promise.resolve()
      .then(() => options.fetch(toRequest(req, aborted.signal), info))
      .then((response) => writeResponse(req, res, response))
      .catch((err) => {
        // The app renders its own errors; this is a client gone mid-response or a bug here.
        if (!res.headersSent && !res.destroyed) {
          log.error("http.listener_error", { err });
          res.writeHead(500, { "content-type": "application/json" });
          res.end('{"error":{"code":"internal","message":"Internal error"}}');
        } else {
          res.destroy();
        }
      });
  });
  // Requests in progress by connection. At shutdown node:http's server.close() waits for every
  // connection to close, and closeIdleConnections() leaves those that have not sent a whole
  // request yet (a client that connected and waits, headers half sent): each of those held the
  // stop until the grace ran out. So a stop ends every connection with no request in progress
  // at once, and each other one as soon as its response is done.
  const inProgress = new Map<Socket, number>();
  let closing = false;
  const endIfDone = (socket: Socket) => {
    if (closing && inProgress.get(socket) === 0) socket.destroy();
  };
  function requestStarted(socket: Socket, res: http.ServerResponse) {
    inProgress.set(socket, (inProgress.get(socket) ?? 0) + 1);
    res.once("close", () => {
      inProgress.set(socket, Math.max(0, (inProgress.get(socket) ?? 1) - 1));
      endIfDone(socket);
    });
  }
  // The cap is counted here rather than by server.maxConnections, whose "drop" event Deno's
  // node:http does not emit: a refusal must be seen in the log and the metrics.
  let open = 0;
  let lastRefusalLog = -Infinity;
  let refusedSinceLog = 0;
  server.on("connection", (socket: Socket) => {
    if (limits.maxConnections > 0 && open >= limits.maxConnections) {
      metrics.limitRefusals.inc({ limit: "http_max_connections" });
      refusedSinceLog++;
      // One line a second at most: a flood must not become a flood of log lines.
      if (performance.now() - lastRefusalLog >= 1_000) {
        log.warn("http.refused", {
          client: plainAddress(socket.remoteAddress),
          reason: "max_connections",
          refused: refusedSinceLog,
        });
        lastRefusalLog = performance.now();
        refusedSinceLog = 0;
      }
      socket.destroy();
      return;
    }
    open++;
    inProgress.set(socket, 0);
    socket.once("close", () => {
      open--;
      inProgress.delete(socket);
    });
  });
  server.on("clientError", (err: Error & { code?: string }, socket: Socket) => {
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      metrics.limitRefusals.inc({ limit: "http_request_timeout" });
      log.info("http.timeout", { client: plainAddress(socket.remoteAddress) });
    }
    if (socket.writable && !socket.destroyed) {
      const status = err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? "408 Request Timeout"
        : err.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    shutdown() {
      return new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        server.closeIdleConnections();
        for (const socket of inProgress.keys()) endIfDone(socket);
      });
    },
  };
}
