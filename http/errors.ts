/**
 * The only place HTTP statuses are chosen. Every error leaves as
 * `{ "error": { "code", "message", "details"? } }`; a stack trace never does.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

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
};

export function renderError(err: unknown, c: Context) {
  if (err instanceof ApiError) {
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
  return c.json({ error: { code: "internal", message: "Internal error" } }, 500);
}
