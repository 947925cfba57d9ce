/**
 * Outbound content filtering with rspamd (README "Content filtering"): where rspamd listens, how
 * long a scan may take, how long held mail waits for an operator, and the abuse brake that
 * suspends a credential whose mail keeps being refused or held.
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { duration } from "./fields.ts";

export const CONTENT_FIELDS = {
  /** rspamd's normal worker (or proxy), e.g. http://127.0.0.1:11333; unset = no filtering. */
  rspamdUrl: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })
    .optional(),
  /** A scan that has not answered by then counts as an rspamd error (the policy's on_error). */
  rspamdTimeout: duration.default(parseDuration("15s")),
  /** Sent as rspamd's `Password` header, for a controller or proxy that asks for one. */
  rspamdPassword: z.string().min(1).optional(),
  /** Held mail nobody released by then is dropped (event `dropped`). */
  holdExpiry: duration.default(parseDuration("7d")),
  /** A credential with more than this many messages rejected or held in the window is suspended; 0 = off. */
  abuseBrakeLimit: z.coerce.number().int().min(0).default(0),
  /** The window the abuse brake counts over. */
  abuseBrakeWindow: duration.default(parseDuration("1h")),
};

/** Env variable → field, merged into load.ts's table. */
export const CONTENT_ENV_NAMES = {
  POSTERN_RSPAMD_URL: "rspamdUrl",
  POSTERN_RSPAMD_TIMEOUT: "rspamdTimeout",
  POSTERN_RSPAMD_PASSWORD: "rspamdPassword",
  POSTERN_HOLD_EXPIRY: "holdExpiry",
  POSTERN_ABUSE_BRAKE_LIMIT: "abuseBrakeLimit",
  POSTERN_ABUSE_BRAKE_WINDOW: "abuseBrakeWindow",
} as const;
