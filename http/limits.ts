/**
 * What one HTTP caller may cost us, as middleware factories that resolve their options once:
 * a request rate per API key (GCRA, one second's worth back to back) and a nesting limit for
 * JSON bodies, checked on the text before anything parses it. The body size limit is Hono's
 * bodyLimit, sized in app.ts. Statuses come from errors.ts.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { type GcraState, gcraTake } from "../core/policy/gcra.ts";
import type { Rate } from "../core/policy/duration.ts";
import { sha256 } from "../core/auth/secrets.ts";
import { metrics } from "../core/metrics.ts";
import { ApiError, errors } from "./errors.ts";
import { AuthLockout } from "../core/auth_lockout.ts";
import type { MemoryBudget } from "../core/policy/memory_budget.ts";
import type { AppEnv } from "./auth.ts";

export interface HttpLimits {
  /** Largest request body in bytes, other than a send. */
  maxBody: number;
  /** Deepest nesting of arrays and objects in a JSON body. */
  maxJsonDepth: number;
  /** Requests per key. */
  rate: Rate;
  /** Failed bearer keys from one client address that lock it out; 0 = never. */
  authFailureLimit: number;
  /** How long that lock lasts after the last failure. */
  authLockoutMs: number;
}

/** The same defaults as core/config/limits.ts, for apps built without a config (tests). */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxBody: 1024 * 1024,
  maxJsonDepth: 32,
  rate: { count: 100, perMs: 1000 },
  authFailureLimit: 5,
  authLockoutMs: 600_000,
};

const MAX_TRACKED = 100_000;

export function clientAddress(c: Context): string {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? "unknown";
}

/**
 * Limits requests per bearer token (a digest of it: the token itself is never kept), or per
 * client address for requests without one. A wrong token is limited like a right one, so
 * guessing costs the same as using. Over the rate: 429 with Retry-After.
 */
export function rateLimitPerKey(rate: Rate, now: () => number = Date.now): MiddlewareHandler {
  const burst = Math.max(1, Math.floor(rate.count * 1000 / rate.perMs));
  const states = new Map<string, GcraState>();
  return async (c, next) => {
    const token = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    const key = token ? `key:${sha256(token)}` : `ip:${clientAddress(c)}`;
    const at = now();
    const result = gcraTake(states.get(key), rate, at, burst);
    if (!result.allowed) {
      metrics.limitRefusals.inc({ limit: "http_rate" });
      c.header("retry-after", String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))));
      throw errors.tooManyRequests(result.retryAfterMs);
    }
    states.delete(key); // re-inserted last: the map stays in least-recently-used order
    states.set(key, result.state);
    if (states.size > MAX_TRACKED) {
      for (const [k, state] of states) {
        if (states.size <= MAX_TRACKED && state.tat > at) break;
        states.delete(k);
      }
    }
    await next();
  };
}

/**
 * The deepest nesting of arrays and objects in JSON text, without parsing it (brackets inside
 * strings do not count). Stops counting once past `stopAt`.
 */
export function jsonDepth(text: string, stopAt = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > stopAt) return deepest;
      }
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return deepest;
}

/**
 * Refuses JSON bodies nested deeper than `maxDepth` (400) before a handler parses them: deep
 * nesting costs a recursive parser and every validator after it, and no request of ours needs
 * more than a few levels. Raw message uploads (message/rfc822) are not JSON and pass.
 */
export function jsonDepthLimit(maxDepth: number): MiddlewareHandler {
  return async (c, next) => {
    const method = c.req.method;
    const type = (c.req.header("content-type") ?? "").toLowerCase();
    if (
      (method === "POST" || method === "PUT" || method === "PATCH") &&
      !type.startsWith("message/rfc822")
    ) {
      const text = await c.req.text(); // cached: the handler's json()/text() reads it again
      if (jsonDepth(text, maxDepth) > maxDepth) {
        metrics.limitRefusals.inc({ limit: "http_json_depth" });
        throw errors.tooDeep(maxDepth);
      }
    }
    await next();
  };
}

/**
 * Failed bearer tokens per client address, as the SMTP side counts failed AUTH: a wrong `pst_`
 * key costs two scrypt derivations to refuse, a wrong admin token is a guess at the one token
 * that opens every account, and a client that rotates random tokens would get a fresh rate
 * bucket with each. Past the limit the client hears 429 before any token is checked
 * (the admin token too), until the lockout has passed since its last failure. With `kv`, the
 * failures and the lock are shared by every node on the store (core/auth_lockout.ts).
 */
export function authFailureLock(
  limit: number,
  lockoutMs: number,
  kv: Deno.Kv | null = null,
): MiddlewareHandler {
  const failures = new AuthLockout({
    limit,
    coolDownMs: lockoutMs,
    delayMs: 0,
    now: Date.now,
    kv,
    scope: "http",
  });
  return async (c, next) => {
    const client = clientAddress(c);
    if ((await failures.locked(client, "")) === "client") {
      metrics.limitRefusals.inc({ limit: "http_auth_client" });
      c.header("retry-after", String(Math.ceil(lockoutMs / 1000)));
      throw errors.tooManyAuthFailures(lockoutMs);
    }
    await next();
    // Hono renders a thrown error where it is thrown, so the 401 is seen on the response. Every
    // refused bearer token counts, a wrong admin token as much as a wrong `pst_` key: guessing
    // either must cost the same lockout.
    const token = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (c.res.status === 401 && token !== undefined) await failures.fail(client, "");
  };
}

/**
 * Bytes a request holds in memory per byte of its body, measured on the send path: a JSON body
 * is held as text, as the parsed value and as the attachments it decodes; a raw upload as its
 * bytes and the chunks made of them.
 */
export const JSON_MEMORY_FACTOR = 5;
export const RAW_MEMORY_FACTOR = 3;
/** What a client told to wait for memory is told to wait. */
const MEMORY_RETRY_AFTER_MS = 10_000;

function memoryBusy(c: Context): never {
  metrics.limitRefusals.inc({ limit: "memory_budget" });
  c.header("retry-after", String(MEMORY_RETRY_AFTER_MS / 1000));
  throw errors.memoryBusy(MEMORY_RETRY_AFTER_MS);
}

/**
 * A request with a body takes a hold on the memory budget before anything reads it: its
 * Content-Length times what reading it costs, or, for a body of unknown length, that much of each
 * piece as it streams in. A client at its share, or a relay at its total, hears 503 with
 * Retry-After before its body is buffered. The hold rides on the context (`memory`) so intake
 * counts the chunks it keeps against it too, and is given back with the response.
 */
export function memoryBudgetLimit(budget: MemoryBudget): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const body = c.req.raw.body;
    if (body === null) return next();
    const type = (c.req.header("content-type") ?? "").toLowerCase();
    const factor = type.startsWith("message/rfc822") ? RAW_MEMORY_FACTOR : JSON_MEMORY_FACTOR;
    const length = Number(c.req.header("content-length"));
    const known = c.req.header("content-length") !== undefined && Number.isSafeInteger(length);
    const hold = budget.hold(clientAddress(c), known ? length * factor : 0);
    if (!hold) memoryBusy(c);
    try {
      if (!known) {
        const refusal = errors.memoryBusy(MEMORY_RETRY_AFTER_MS);
        const reader = body.getReader();
        const counted = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            if (!hold.grow(value.length * factor)) {
              await reader.cancel();
              return controller.error(refusal);
            }
            controller.enqueue(value);
          },
          cancel: (reason) => reader.cancel(reason),
        });
        c.req.raw = new Request(c.req.raw, { body: counted, duplex: "half" } as RequestInit);
      }
      c.set("memory", hold);
      try {
        await next();
      } catch (err) {
        if (err instanceof ApiError && err.code === "memory_busy") memoryBusy(c);
        throw err;
      }
    } finally {
      hold.release();
    }
  };
}
