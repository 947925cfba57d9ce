/**
 * The only place HTTP statuses are chosen. Every error leaves as
 * `{ "error": { "code", "message", "details"? } }`; a stack trace never does.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type ScopeRefusal, SENDER_PROBLEM_TEXT } from "../core/send_scope.ts";
import type { IntakeRejection } from "../core/intake.ts";
import { type ByReason, byReason } from "../core/by_reason.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { shortId } from "../core/ids.ts";
import { CommitFailedError, DEFAULT_STORE_RETRY_MS } from "../core/store/committer.ts";
import { StoreUnavailableError } from "../core/store/bounded_kv.ts";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const errors = {
  unauthorized: () => new ApiError(401, "unauthorized", "Missing or invalid bearer token"),
  forbidden: (what: string) => new ApiError(403, "forbidden", `Not allowed: ${what}`),
  notFound: (what: string) => new ApiError(404, "not_found", `${what} not found`),
  invalid: (message: string, details?: unknown) =>
    new ApiError(400, "invalid_request", message, details),
  conflict: (message: string) => new ApiError(409, "conflict", message),
  tooLarge: (limit: number) =>
    new ApiError(413, "payload_too_large", `Request body exceeds ${limit} bytes`),
  unavailable: (message: string) => new ApiError(503, "unavailable", message),
  /** POSTERN_MEMORY_BUDGET, or the client's share of it, is held by mail in transit. */
  memoryBusy: (retryAfterMs: number) =>
    new ApiError(
      503,
      "memory_busy",
      "The relay holds as much mail in memory as it may; retry later",
      { retry_after_s: Math.ceil(retryAfterMs / 1000) },
    ),
  /** A sandbox submission fault (smtp-421@, smtp-451@): retry after the time named. */
  unavailableFor: (message: string, retryAfterMs: number) =>
    new ApiError(503, "unavailable", message, { retry_after_s: Math.ceil(retryAfterMs / 1000) }),
  /** The store could not take the commit within POSTERN_STORE_RETRY (locked or unreachable). */
  storeUnavailable: (retryAfterMs: number) =>
    new ApiError(503, "unavailable", "The queue is temporarily unavailable; retry later", {
      retry_after_s: Math.max(1, Math.ceil(retryAfterMs / 1000)),
    }),
  /** A credential's rate_limit or daily_quota is spent (the SMTP side answers 451 4.7.0). */
  rateLimited: (message: string, retryAfterMs: number) =>
    new ApiError(429, "rate_limited", message, { retry_after_s: Math.ceil(retryAfterMs / 1000) }),
  /** The sandbox's smtp-552@: the answer a relay gives a message over its size limit. */
  tooLargeSimulated: () =>
    new ApiError(413, "payload_too_large", "Message too big for system (sandbox smtp-552)"),
  /** A message whose header section is over POSTERN_MAX_HEADER_SIZE. */
  headerTooLarge: (limit: number) =>
    new ApiError(413, "payload_too_large", `Message header exceeds ${limit} bytes`),
  /** A JSON body nested deeper than POSTERN_HTTP_MAX_JSON_DEPTH. */
  tooDeep: (limit: number) =>
    new ApiError(400, "invalid_json", `Request body nests deeper than ${limit} levels`),
  /** An API key (or a client without one) over POSTERN_HTTP_RATE_LIMIT. */
  tooManyRequests: (retryAfterMs: number) =>
    new ApiError(429, "rate_limited", "Too many requests for this key, slow down", {
      retry_after_s: Math.ceil(retryAfterMs / 1000),
    }),
  /** A client address with too many failed bearer keys (POSTERN_AUTH_FAILURE_LIMIT). */
  tooManyAuthFailures: (retryAfterMs: number) =>
    new ApiError(429, "rate_limited", "Too many failed authentications from this address", {
      retry_after_s: Math.ceil(retryAfterMs / 1000),
    }),
  /** The content scan refused the message (SMTP answers 550 5.7.1 with the same reason). */
  contentRejected: (reason: string) =>
    new ApiError(422, "content_rejected", `Message refused by the content filter: ${reason}`),
  /** The abuse brake suspended the credential; an admin lifts it (PATCH suspended: false). */
  credentialSuspended: () =>
    new ApiError(
      403,
      "credential_suspended",
      "The credential is suspended: too many messages were rejected or held by the content filter",
    ),
  /** A message with a bare CR, bare LF or NUL where the caller asked for them to be refused. */
  bareLineEnding: (found: string) =>
    new ApiError(400, "invalid_request", `Message contains a bare ${found}`),
};

/** The HTTP answer to each send-scope refusal (smtp/replies.ts has the SMTP twin). */
const SCOPE_ERRORS: ByReason<ScopeRefusal, ApiError> = {
  revoked: () => errors.unauthorized(),
  suspended: () => errors.credentialSuspended(),
  client_not_allowed: (r) => errors.forbidden(`sending from ${r.client} with this credential`),
  sender_not_allowed: (r) =>
    errors.forbidden(`sending as ${r.domain}, which ${SENDER_PROBLEM_TEXT[r.why]}`),
  multiple_senders: (r) => errors.invalid(`The message has more than one ${r.field} header field`),
  pool_not_allowed: (r) => errors.forbidden(`pool ${r.pool} with this credential`),
  too_many_recipients: (r) =>
    errors.invalid("Request body is invalid", [
      { path: "", message: `at most ${r.limit} recipients` },
    ]),
  rate: (r) =>
    errors.rateLimited("The credential's rate_limit is reached; retry later", r.retryAfterMs),
  quota: (r) =>
    errors.rateLimited(
      "The credential's daily_quota (recipients per UTC day) has no room for this message; " +
        "retry tomorrow (UTC)",
      r.retryAfterMs,
    ),
};

/** The HTTP answer to each reason intake refuses a message (`retryMs`: the store's retry). */
const INTAKE_ERRORS: ByReason<IntakeRejection, ApiError, [retryMs: number]> = {
  too_large: (r) => errors.tooLarge(r.limit),
  scope: (r) => scopeError(r.refusal),
  header_too_large: (r) => errors.headerTooLarge(r.limit),
  bare_line_ending: (r) => errors.bareLineEnding(r.found),
  content_rejected: (r) => errors.contentRejected(r.message),
  content_unavailable: () => errors.unavailable("The content filter is unavailable; retry later"),
  memory_busy: () => errors.memoryBusy(10_000),
  signing_unavailable: () => errors.unavailable("DKIM signing is unavailable; retry later"),
  store_failed: (_r, retryMs) => errors.storeUnavailable(retryMs),
};

export function scopeError(r: ScopeRefusal): ApiError {
  return byReason(SCOPE_ERRORS, r);
}

export function intakeError(r: IntakeRejection, retryMs: number): ApiError {
  return byReason(INTAKE_ERRORS, r, retryMs);
}

/** One failed item of a batch: its status and the usual error body. */
export function errorItem(err: ApiError) {
  return {
    status: err.status,
    error: {
      code: err.code,
      message: err.message,
      ...(err.details !== undefined ? { details: err.details } : {}),
    },
  };
}

/**
 * The app's onError. An unexpected error is logged with a request id that the 500's body also
 * carries (`details.request_id`, and the `X-Request-Id` header), so a user's report finds the
 * log line; the error itself stays in the log.
 */
export function errorRenderer(log: Logger) {
  return (err: unknown, c: Context) => {
    const known = renderKnownError(err, c);
    if (known) return known;
    if (c.req.raw.signal.aborted) {
      // The client left (or was cut off by a listener deadline) while its body was read: no one
      // is there to answer, and nothing failed on our side.
      log.info("http.aborted", { method: c.req.method, path: c.req.path });
      return c.json(
        { error: { code: "aborted", message: "The request did not arrive whole" } },
        400,
      );
    }
    const requestId = shortId("req_");
    log.error("http.internal_error", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      err: err instanceof Error ? err : String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
    c.header("x-request-id", requestId);
    return c.json({
      error: {
        code: "internal",
        message: `Internal error (request ${requestId})`,
        details: { request_id: requestId },
      },
    }, 500);
  };
}

/**
 * errorRenderer writing to stdout as the relay's logger does, for apps built without one (the
 * dashboard's in-process API and sign-in check): their 500s are logged with a request id too.
 */
export const renderError = errorRenderer(createLogger());

function renderKnownError(err: unknown, c: Context): Response | null {
  if (err instanceof CommitFailedError || err instanceof StoreUnavailableError) {
    return renderKnownError(errors.storeUnavailable(DEFAULT_STORE_RETRY_MS), c);
  }
  if (err instanceof ApiError) {
    const retryAfter = (err.details as { retry_after_s?: unknown } | undefined)?.retry_after_s;
    if (typeof retryAfter === "number" && !c.res.headers.has("retry-after")) {
      c.header("retry-after", String(Math.max(1, retryAfter)));
    }
    return c.json({
      error: {
        code: err.code,
        message: err.message,
        ...(err.details !== undefined ? { details: err.details } : {}),
      },
    }, err.status);
  }
  if (err instanceof SyntaxError) {
    return c.json(
      { error: { code: "invalid_json", message: "Request body is not valid JSON" } },
      400,
    );
  }
  return null;
}
