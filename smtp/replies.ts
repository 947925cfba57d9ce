import { type ScopeRefusal, SENDER_PROBLEM_TEXT, type SenderProblem } from "../core/send_scope.ts";
import type { IntakeRejection } from "../core/intake.ts";
import { type ByReason, byReason } from "../core/by_reason.ts";

/**
 * The only place SMTP reply codes are chosen. Each reply carries its RFC 3463 enhanced code in the
 * text; smtp_server_patches.ts makes smtp-server send it as-is instead of adding a generic one.
 */

export interface Reply {
  responseCode: number;
  message: string;
}

function reply(code: number, enhanced: string, text: string): Reply {
  return { responseCode: code, message: `${enhanced} ${text}` };
}

export const replies = {
  queued: (id: string) => `2.0.0 OK queued as ${id}`,
  shuttingDown: (host: string) => reply(421, "4.3.2", `${host} shutting down, try again later`),
  authRequired: () => reply(530, "5.7.0", "Authentication required"),
  /** MAIL FROM in clear from a client that may not relay unauthenticated. */
  tlsFirst: () =>
    reply(530, "5.7.0", "Must issue a STARTTLS command first, then AUTH: authentication required"),
  authFailed: () => reply(535, "5.7.8", "Authentication credentials invalid"),
  authTemporary: () => reply(454, "4.7.0", "Temporary authentication failure"),
  credentialRevoked: () => reply(535, "5.7.8", "Credential no longer valid"),
  relayDenied: () => reply(554, "5.7.1", "Relay access denied"),
  badSender: (why: string) => reply(553, "5.1.7", `Bad sender address: ${why}`),
  badRecipient: (why: string) => reply(553, "5.1.3", `Bad recipient address: ${why}`),
  badRecipientDomain: () => reply(550, "5.1.2", "Bad destination domain"),
  tooLarge: (limit: number) =>
    reply(552, "5.3.4", `Message exceeds the size limit of ${limit} bytes`),
  storeFailed: () => reply(451, "4.3.0", "Queue temporarily unavailable, try again later"),
  /** POSTERN_MEMORY_BUDGET (or the client's share of it) is held by mail in transit. */
  memoryBusy: () =>
    reply(452, "4.3.1", "Insufficient system resources for more mail now, try again later"),
  addressNotAllowed: () => reply(535, "5.7.8", "Credential not valid from this address"),
  senderNotAllowed: (domain: string, why: SenderProblem = "credential_domains") =>
    reply(550, "5.7.1", `Sender domain ${printable(domain)} ${SENDER_PROBLEM_TEXT[why]}`),
  /** RFC 5322 §3.6: at most one From and one Sender field. */
  multipleSenders: (field: "From" | "Sender") =>
    reply(550, "5.6.0", `Message has more than one ${field} header field`),
  poolNotAllowed: (pool: string) =>
    reply(550, "5.7.1", `Pool ${printable(pool)} not allowed for this credential`),
  /** RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 parameter on MAIL FROM. */
  utf8WithoutSmtputf8: () =>
    reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter on MAIL FROM"),
  rateLimited: () => reply(451, "4.7.0", "Sending rate limit exceeded, try again later"),
  quotaExceeded: () => reply(451, "4.7.0", "Daily sending quota exceeded, try again tomorrow"),
  /** The content scan refused the message: rspamd's short reason (made printable by the policy). */
  contentRejected: (reason: string) => reply(550, "5.7.1", printableLine(reason)),
  /** rspamd failed and the account's on_error is tempfail. */
  contentUnavailable: () =>
    reply(451, "4.7.1", "Content filter temporarily unavailable, try again later"),
  /** The message's DKIM signature could not be made now. */
  signingUnavailable: () =>
    reply(451, "4.3.0", "DKIM signing temporarily unavailable, try again later"),
  /** The abuse brake suspended the credential (too many messages rejected or held). */
  credentialSuspended: () =>
    reply(550, "5.7.1", "Credential suspended for abuse; contact the relay's administrator"),
  /**
   * A recipient past the room left in the daily quota (which counts recipients): 452, as for
   * too many recipients (RFC 5321 §4.5.3.1.10), so clients keep the rest for later and the
   * refusals do not count as session errors.
   */
  recipientOverQuota: () =>
    reply(452, "4.7.0", "Daily sending quota has no room for more recipients, try again tomorrow"),

  // Abuse limits (core/config/limits.ts). Postfix's wording where Postfix has the limit.
  /** smtpd_forbid_bare_newline = reject: a bare CR or LF (or a NUL) in DATA. */
  bareLineEnding: (found: "CR" | "LF" | "NUL") =>
    reply(
      550,
      "5.5.2",
      found === "NUL" ? "Error: NUL byte received" : `Error: bare <${found}> received`,
    ),
  headerTooLarge: (limit: number) =>
    reply(552, "5.3.4", `Message header exceeds the size limit of ${limit} bytes`),
  tooManyRecipients: () => reply(452, "4.5.3", "Error: too many recipients"),
  serverBusy: (host: string) =>
    reply(421, "4.3.2", `${host} Error: too many connections, try again in a moment`),
  tooManyConnectionsFromClient: (host: string) =>
    reply(421, "4.7.0", `${host} Error: too many connections from your address`),
  connectionRateExceeded: (host: string) =>
    reply(421, "4.7.0", `${host} Error: too many connections from your address, slow down`),
  tooManyErrors: (host: string) => reply(421, "4.7.0", `${host} Error: too many errors`),
  sessionTimeout: (host: string) =>
    reply(421, "4.4.2", `${host} Error: session time limit exceeded`),
  dataTooSlow: (host: string) =>
    reply(421, "4.4.2", `${host} Error: message data arrived below the minimum rate`),
  lineTooLong: (host: string) => reply(421, "4.7.0", `${host} Error: line too long`),
  protocolError: (host: string) => reply(421, "4.3.0", `${host} Error: cannot read the session`),
  /** A username with too many recent failures; other usernames may still try. */
  authUserLocked: () =>
    reply(454, "4.7.0", "Too many failed authentication attempts, try again later"),
  /** A client address with too many recent failures: the session is closed. */
  authClientLocked: (host: string) =>
    reply(421, "4.7.0", `${host} Error: too many failed authentication attempts`),
  /** Inbound reports: a VERP address whose tag does not verify (forged or mistyped). */
  unknownBounceAddress: () => reply(550, "5.1.1", "No such bounce address"),
  /** Inbound reports: taken, whether or not it named a message of ours. */
  reportAccepted: () => "2.0.0 Report accepted",
};

/** The reply for each send-scope refusal (core/send_scope.ts). */
const SCOPE_REPLIES: ByReason<ScopeRefusal, Reply> = {
  revoked: () => replies.credentialRevoked(),
  client_not_allowed: () => replies.addressNotAllowed(),
  sender_not_allowed: (r) => replies.senderNotAllowed(r.domain, r.why),
  multiple_senders: (r) => replies.multipleSenders(r.field),
  pool_not_allowed: (r) => replies.poolNotAllowed(r.pool),
  suspended: () => replies.credentialSuspended(),
  too_many_recipients: () => replies.tooManyRecipients(),
  rate: () => replies.rateLimited(),
  quota: () => replies.quotaExceeded(),
};

/** The reply for each reason intake refuses a message at the end of DATA (core/intake.ts). */
const INTAKE_REPLIES: ByReason<IntakeRejection, Reply> = {
  too_large: (r) => replies.tooLarge(r.limit),
  scope: (r) => scopeRefused(r.refusal),
  bare_line_ending: (r) => replies.bareLineEnding(r.found),
  header_too_large: (r) => replies.headerTooLarge(r.limit),
  content_rejected: (r) => replies.contentRejected(r.message),
  content_unavailable: () => replies.contentUnavailable(),
  memory_busy: () => replies.memoryBusy(),
  signing_unavailable: () => replies.signingUnavailable(),
  store_failed: () => replies.storeFailed(),
};

/** The reply for a send-scope refusal (core/send_scope.ts). */
export function scopeRefused(r: ScopeRefusal): Reply {
  return byReason(SCOPE_REPLIES, r);
}

/** The reply for a message intake refused. */
export function intakeRefused(r: IntakeRejection): Reply {
  return byReason(INTAKE_REPLIES, r);
}

/** Client-supplied text echoed in a reply: one line of printable ASCII, bounded. */
function printable(text: string): string {
  return text.replace(/[^\x21-\x7e]/g, "?").slice(0, 100);
}

/** A sentence echoed in a reply: printable ASCII with spaces, one line, bounded. */
function printableLine(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, " ").slice(0, 200);
}

/** Enhanced codes for replies smtp-server writes itself (RFC 3463, RFC 4954 §6 for 538). */
export const ENHANCED_OVERRIDES: Record<number, string> = {
  538: "5.7.11",
};
