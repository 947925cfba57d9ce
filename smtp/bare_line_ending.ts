/**
 * The one refusal of a bare CR, bare LF or NUL in DATA (SMTP smuggling), shared by the
 * submission ports and the inbound report listener so both answer, count and log it alike.
 */
import type { BareLineEnding } from "../core/mail/line_endings.ts";
import type { Logger } from "../core/log.ts";
import { metrics } from "../core/metrics.ts";
import { replies } from "./replies.ts";

/** Counts and logs the refusal. */
export function countBareLineEnding(
  log: Logger,
  found: BareLineEnding,
  fields: Record<string, unknown>,
): void {
  metrics.limitRefusals.inc({ limit: "bare_line_ending" });
  log.warn("smtp.rejected", { reason: "bare_line_ending", found, ...fields });
}

/** Counts and logs the refusal; returns the error smtp-server answers `550 5.5.2` with. */
export function bareLineEndingRefusal(
  log: Logger,
  found: BareLineEnding,
  fields: Record<string, unknown>,
): Error {
  countBareLineEnding(log, found, fields);
  const r = replies.bareLineEnding(found);
  return Object.assign(new Error(r.message), { responseCode: r.responseCode });
}
