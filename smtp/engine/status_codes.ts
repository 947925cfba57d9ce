/**
 * The RFC 3463 enhanced status code smtp-server 3.21.6 puts before a reply's text (its tables,
 * MIT, Andris Reinman): by the reply's context where it names one, else by its code. Replies of
 * ours (replies.ts) carry their own and never come here.
 *
 * @module
 */

const ENHANCED_STATUS_CODES: Record<number, string> = {
  200: "2.0.0",
  211: "2.0.0",
  214: "2.0.0",
  220: "2.0.0",
  221: "2.0.0",
  235: "2.7.0",
  250: "2.0.0",
  251: "2.1.5",
  252: "2.1.5",
  334: "3.7.0",
  354: "2.0.0",
  420: "4.4.2",
  421: "4.4.2",
  450: "4.2.1",
  451: "4.3.0",
  452: "4.2.2",
  454: "4.7.0",
  500: "5.5.2",
  501: "5.5.4",
  502: "5.5.1",
  503: "5.5.1",
  504: "5.5.4",
  521: "5.3.2",
  523: "5.3.4",
  530: "5.7.0",
  535: "5.7.8",
  538: "5.7.0",
  550: "5.1.1",
  551: "5.1.6",
  552: "5.2.2",
  553: "5.1.3",
  554: "5.6.0",
  555: "5.5.4",
  556: "5.1.10",
  557: "5.7.1",
  558: "5.2.3",
};
const SKIPPED_FOR_ENHANCED = new Set(["HELO", "EHLO", "LHLO"]);
const CONTEXTUAL_STATUS_CODES: Record<string, string> = {
  MAIL_FROM_OK: "2.1.0",
  RCPT_TO_OK: "2.1.5",
  DATA_OK: "2.6.0",
  AUTH_SUCCESS: "2.7.0",
  AUTH_REQUIRED: "5.7.0",
  AUTH_INVALID: "5.7.8",
  POLICY_VIOLATION: "5.7.1",
  NOT_AUTHORIZED: "5.7.0",
  SPAM_REJECTED: "5.7.1",
  MAILBOX_FULL: "4.2.2",
  TOO_MANY_RECIPIENTS: "4.5.3",
  MAILBOX_NOT_FOUND: "5.1.1",
  MAILBOX_SYNTAX_ERROR: "5.1.3",
  SENDER_SYNTAX_ERROR: "5.1.7",
  SYSTEM_ERROR: "4.3.0",
  SYSTEM_FULL: "4.3.1",
  MESSAGE_TOO_BIG: "5.3.4",
  NETWORK_ERROR: "4.4.0",
  CONNECTION_TIMEOUT: "4.4.2",
};

/** The code for a reply: "" for 3yz and for the greeting replies smtp-server leaves bare. */
export function enhancedStatusCode(code: number, context: unknown): string {
  if (code >= 300 && code < 400) return "";
  if (typeof context === "string") {
    if (SKIPPED_FOR_ENHANCED.has(context)) return "";
    const contextual = CONTEXTUAL_STATUS_CODES[context];
    if (contextual) return contextual;
  }
  const known = ENHANCED_STATUS_CODES[code];
  if (known) return known;
  if (code >= 200 && code < 300) return "2.0.0";
  if (code >= 400 && code < 500) return "4.0.0";
  if (code >= 500) return "5.0.0";
  return "";
}
