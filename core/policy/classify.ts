/**
 * Turns what a receiving server said (or how the connection failed) into what the queue does
 * next: done, try again, or bounce, and why, in a small fixed vocabulary that events, webhooks
 * and suppressions share.
 *
 * The reply code decides the kind (RFC 5321 §4.2.1: 2yz done, 4yz transient, 5yz permanent).
 * The category comes from the RFC 3463 enhanced status code when it is specific, and otherwise
 * from the wording, because many large receivers put the real reason only in the text.
 *
 * @module
 */

import { greylistWindowMs } from "./greylist.ts";

/** Why a delivery did not succeed. */
export type BounceCategory =
  | "invalid_recipient"
  | "mailbox_full"
  | "policy_block"
  | "auth_failure"
  | "bad_domain"
  | "greylisted"
  | "throttled"
  | "tls_failure"
  | "expired"
  | "other";

/** One SMTP reply: the RFC 5321 code, the RFC 3463 enhanced code if sent, and the text. */
export interface Reply {
  code: number;
  enhanced?: string;
  text: string;
}

/** The verdict on one reply or connection failure. `category` is null on success. */
export interface Classification {
  kind: "success" | "transient" | "permanent";
  category: BounceCategory | null;
  retryAfterMs?: number;
}

// The first reply code in the string. Callers hand us nodemailer error messages that prefix the
// reply ("Can't send mail - all recipients were rejected: 550 5.1.1 ..."), so we search rather
// than anchor; the look-behind keeps us off digits inside words, addresses and IPs.
const REPLY_CODE = /(?<![\w.])([2-5]\d\d)(?:[ -]|(?=\r?\n|$))/;
const LINE = /^([2-5]\d\d)(?:[ -]|$)(.*)$/;
// RFC 3463 §2: class "." subject "." detail, with 1–3 digit subject and detail. Some servers
// (old Yahoo, Sendmail) write "#5.1.0".
const ENHANCED = /^#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])\s*/;

/**
 * Parses a possibly multi-line SMTP reply, possibly prefixed by other text, into one `Reply`.
 * Continuation lines ("451-4.7.1 ...") are joined with single spaces, with their repeated code
 * and enhanced code removed.
 *
 * @throws {Error} when the string holds no three-digit reply code.
 */
export function parseReply(raw: string): Reply {
  const found = REPLY_CODE.exec(raw);
  if (found === null) {
    throw new Error(`Cannot parse SMTP reply "${raw}": no three-digit reply code found`);
  }
  const code = Number(found[1]);
  let enhanced: string | undefined;
  const texts: string[] = [];
  for (const line of raw.slice(found.index).split(/\r?\n/)) {
    const coded = LINE.exec(line);
    let rest = coded !== null && Number(coded[1]) === code ? coded[2]! : line;
    const status = ENHANCED.exec(rest);
    if (status !== null && (enhanced === undefined || enhanced === status[1])) {
      enhanced = status[1]!;
      rest = rest.slice(status[0].length);
    }
    const trimmed = rest.trim();
    if (trimmed !== "") texts.push(trimmed);
  }
  const text = texts.join(" ");
  return enhanced === undefined ? { code, text } : { code, enhanced, text };
}

/**
 * Classifies one reply. Anything other than 2yz, 4yz or 5yz (a stray 3yz as a final answer)
 * counts as transient "other": retrying is bounded by the queue lifetime, bouncing is final.
 * `retryAfterMs` is set on transient replies whose text names a wait ("try again in 5 minutes").
 */
export function classifyReply(reply: Reply): Classification {
  const kind = reply.code >= 200 && reply.code < 300
    ? "success"
    : reply.code >= 500 && reply.code < 600
    ? "permanent"
    : "transient";
  if (kind === "success") return { kind, category: null };
  const category = categoryFromEnhanced(reply) ?? categoryFromCode(reply.code) ??
    categoryFromText(reply) ?? (reply.code === 421 ? "throttled" : "other");
  const retryAfterMs = kind === "transient" ? greylistWindowMs(reply.text) : undefined;
  return retryAfterMs === undefined ? { kind, category } : { kind, category, retryAfterMs };
}

const TLS = /\b(?:STARTTLS|TLS|SSL)\b|encryption (?:is )?required|must use encryption/i;
// Only our own credentials. "unauthenticated mail" and "fails to pass authentication checks"
// are about SPF/DKIM/DMARC, which is a policy block, not an auth failure.
const AUTH =
  /authentication (?:is )?required|authentication (?:failed|unsuccessful)|authentication credentials invalid|not authenticated|(?:username|user name) and password not accepted|(?:invalid|bad) credentials|must authenticate|auth(?:entication)? mechanism/i;
const GREYLIST = /gr[ae]y-?list/i;
// What greylisters say when they do not say "greylist": Exchange's "4.7.1 ... Try again later",
// Yahoo's "temporarily deferred", milter and filter wordings that ask to come back in a while.
const DEFERRAL =
  /temporarily deferred|\b(?:try again|retry|come back)(?: in \d| later)|please (?:retry|try again)/i;
const MAILBOX_FULL =
  /(?<!sending )quota|mailbox (?:is )?full|insufficient storage|out of storage|storage (?:space|allocation)|mailbox size limit/i;
const SENDER_REJECTED = /sender address rejected/i;
const BAD_DOMAIN =
  /domain not found|host not found|host or domain name not found|unrout(?:e)?able|no mx\b|null mx|domain (?:does not|doesn't) exist|no such domain|unknown domain/i;
const INVALID_RECIPIENT =
  /user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does not exist|doesn't exist|mailbox not found|recipient not found|user not found|invalid (?:recipient|mailbox)|unknown (?:recipient|mailbox)|(?:doesn't|does not) have an? \S+ account|account (?:is )?(?:disabled|inactive)|recipient address rejected: access denied/i;
// RFC 5321's own 550 wording; servers also use it for policy rejections, so it is checked last.
const MAILBOX_UNAVAILABLE = /mailbox unavailable/i;
const THROTTLED =
  /rate limit|too many|throttl|slow down|server busy|at a rate|unusual rate|unexpected volume|sending (?:limit|quota)|too fast|congest/i;
const POLICY =
  /spam|blocked|black ?list|block ?list|reputation|policy|rejected due to|denied|prohibit|banned|not accepted|unsolicited|dnsbl/i;
const EXPIRED = /delivery (?:time )?expired|message expired|too old/i;

// A 4yz reply that says outright it greylists us.
function saysGreylisted(reply: Reply): boolean {
  return reply.code >= 400 && reply.code < 500 && GREYLIST.test(reply.text);
}

// A 450/451 that asks us to come back after a while without naming greylisting. Checked after
// the throttling words, so "rate limit exceeded, try again in 10 minutes" stays "throttled";
// a 421 closes the connection, which is throttling whatever it says (see isThrottling).
function impliesGreylisting(reply: Reply): boolean {
  return (reply.code === 450 || reply.code === 451) && DEFERRAL.test(reply.text);
}

function categoryFromEnhanced(reply: Reply): BounceCategory | undefined {
  if (reply.enhanced === undefined) return undefined;
  const [klass, subject, detail] = reply.enhanced.split(".").map(Number);
  switch (subject) {
    case 1: // Addressing status.
      if (SENDER_REJECTED.test(reply.text)) return "policy_block";
      if (detail === 2) return "bad_domain";
      // x.1.7 / x.1.8: our sender address or its domain is refused.
      if (detail === 7 || detail === 8) return "policy_block";
      // x.1.10 is RFC 7505's null MX, but Microsoft also uses it for "RecipientNotFound".
      if (detail === 10 && /null mx/i.test(reply.text)) return "bad_domain";
      if ([0, 1, 3, 6, 10].includes(detail!)) return "invalid_recipient";
      return undefined;
    case 2: // Mailbox status.
      if (detail === 2) return "mailbox_full";
      // 5.2.1 is a disabled mailbox; Gmail's 4.2.1 means "receiving mail too fast", so read text.
      if (detail === 1 && klass === 5) return "invalid_recipient";
      return undefined;
    case 4: // Network and routing status.
      if (detail === 4) return "bad_domain"; // Unable to route: no usable MX or A.
      if (detail === 5) return "throttled"; // Mail system congestion; Gmail's sending limits.
      if (detail === 7) return "expired"; // Delivery time expired, from a smarthost.
      return undefined;
    case 5: // Mail delivery protocol status.
      if (detail === 3) return "throttled"; // Too many recipients; RFC 5321 §4.5.3.1.10.
      return undefined;
    case 7: // Security or policy status.
      return categoryFromPolicyStatus(reply, klass!, detail!);
    default:
      return undefined;
  }
}

function categoryFromPolicyStatus(reply: Reply, klass: number, detail: number): BounceCategory {
  // Gmail's 4.7.28 (unusual rate from your IP) and Outlook's 4.7.500–4.7.699 (temporarily rate
  // limited, server busy) are throttling whatever their words; Outlook's 5.7.5xx–6xx are blocks.
  if (klass === 4 && (detail === 28 || (detail >= 500 && detail <= 699))) return "throttled";
  if (detail === 8) return "auth_failure"; // RFC 4954: authentication credentials invalid.
  if (detail === 10 || detail === 11) return "tls_failure"; // RFC 5248/4954: encryption needed.
  // RFC 7372 x.7.20–x.7.26: the message failed DKIM/SPF/DMARC checks. A policy block, not an
  // auth failure, although the text is full of "authentication".
  if (detail >= 20 && detail <= 26) return "policy_block";
  // TLS before AUTH, here and in categoryFromText: AUTH is only offered after STARTTLS.
  if (TLS.test(reply.text)) return "tls_failure";
  if (AUTH.test(reply.text)) return "auth_failure";
  if (saysGreylisted(reply)) return "greylisted";
  if (reply.code === 421 || THROTTLED.test(reply.text)) return "throttled";
  if (impliesGreylisting(reply)) return "greylisted";
  return "policy_block";
}

function categoryFromCode(code: number): BounceCategory | undefined {
  // RFC 4954 §6: 534 mechanism too weak, 535 credentials invalid, 538 encryption required.
  if (code === 534 || code === 535) return "auth_failure";
  if (code === 538) return "tls_failure";
  return undefined;
}

function categoryFromText(reply: Reply): BounceCategory | undefined {
  const text = reply.text;
  if (TLS.test(text)) return "tls_failure";
  if (AUTH.test(text)) return "auth_failure";
  if (saysGreylisted(reply)) return "greylisted";
  if (MAILBOX_FULL.test(text)) return "mailbox_full";
  if (SENDER_REJECTED.test(text)) return "policy_block";
  if (BAD_DOMAIN.test(text)) return "bad_domain";
  if (INVALID_RECIPIENT.test(text)) return "invalid_recipient";
  if (THROTTLED.test(text)) return "throttled";
  if (impliesGreylisting(reply)) return "greylisted";
  if (POLICY.test(text)) return "policy_block";
  if (MAILBOX_UNAVAILABLE.test(text)) return "invalid_recipient";
  if (EXPIRED.test(text)) return "expired";
  return undefined;
}

/**
 * Whether a reply (or an error message carrying one) asks us to slow down: the one definition the
 * site actor uses to shrink its window and rate. Greylisting never does: it judges the sender
 * and recipient pair, not our pace, so it reschedules that recipient and nothing else.
 */
export function isThrottling(raw: string): boolean {
  let reply: Reply;
  try {
    reply = parseReply(raw);
  } catch {
    return false;
  }
  return reply.code >= 400 && classifyReply(reply).category === "throttled";
}

const TLS_ERROR = /\b(?:TLS|SSL|STARTTLS)\b|certificate|handshake/i;
const NO_SUCH_DOMAIN = /ENOTFOUND|NXDOMAIN|no MX and no A|null MX/i;

/**
 * Classifies a failure to reach or talk to a server at all (no SMTP reply to read): Node's
 * socket and DNS error codes (ECONNREFUSED, ETIMEDOUT, ECONNRESET, EHOSTUNREACH, ENETUNREACH,
 * EAI_AGAIN, ...), nodemailer's own (ECONNECTION, ESOCKET, ETLS, EDNS) and its messages such as
 * "Greeting never received".
 *
 * Never permanent: no server judged the recipient, and a name that did not resolve may resolve
 * tomorrow (a domain that really does not exist is decided from the DNS answer itself, see
 * dns_outcome.ts, never from an error's wording). A name that did not resolve is "bad_domain",
 * TLS trouble "tls_failure", everything else, including codes we do not know, "other": a wrong
 * retry costs a little time while a wrong bounce loses the message.
 */
export function classifyConnectionError(
  err: { code?: string | undefined; message?: string | undefined },
): Classification {
  const code = err.code ?? "";
  const message = err.message ?? "";
  if (code === "ETLS" || TLS_ERROR.test(message)) {
    return { kind: "transient", category: "tls_failure" };
  }
  if (code === "ENOTFOUND" || NO_SUCH_DOMAIN.test(message)) {
    return { kind: "transient", category: "bad_domain" };
  }
  return { kind: "transient", category: "other" };
}
