/**
 * The sandbox's address table, as data: which local parts at the simulator domain do what. Two
 * kinds: *delivery* behaviours are played by the simulated MX the relay delivers to (so the
 * production classification, retries, DSNs, events and webhooks follow), and *submission*
 * faults are played by the relay's own front doors (SMTP and the send API) before anything is
 * queued, so a client can rehearse the relay itself failing. GET /v1/sandbox and the README
 * list this same table.
 *
 * @module
 */

/** The reserved domain (RFC 2606 `.invalid`: it can never reach a real mailbox). */
export const DEFAULT_SIMULATOR_DOMAIN = "simulator.postern.invalid";

export type DeliveryBehavior =
  | "delivered"
  | "bounce"
  | "mailbox-full"
  | "defer"
  | "greylist"
  | "throttle"
  | "timeout"
  | "tls-required"
  | "complaint"
  | "ooo"
  | "suppressed";

export type SubmissionFault = "smtp-421" | "smtp-451" | "smtp-slow" | "smtp-552";

export const SUBMISSION_FAULTS = [
  "smtp-421",
  "smtp-451",
  "smtp-slow",
  "smtp-552",
] as const satisfies readonly SubmissionFault[];

export interface SandboxEntry {
  local: DeliveryBehavior | SubmissionFault;
  kind: "delivery" | "submission";
  /** What a client sees, in one sentence. */
  does: string;
  /** The reply the simulator or relay gives (first reply, for staged behaviours). */
  reply: string;
  /** The events a consumer sees for the recipient, in order. */
  events: string[];
  /** Over the send API (submission faults only). */
  http?: string;
}

/** Throttle answers 421 this many attempts in a row, then accepts. */
export const THROTTLE_ATTEMPTS = 2;
/** The reply of the simulated MX's greylisting, naming its window in seconds. */
export const greylistReply = (seconds: number) =>
  `451 4.7.1 Greylisted: try again in ${seconds} seconds`;

export function sandboxTable(
  settings: { greylistMs: number; slowMs: number },
): SandboxEntry[] {
  const greylistS = Math.max(1, Math.round(settings.greylistMs / 1000));
  const slowS = Math.round(settings.slowMs / 1000);
  return [
    {
      local: "delivered",
      kind: "delivery",
      does: "Accepted by the simulated MX at the first attempt.",
      reply: "250 2.0.0 Delivered (simulated)",
      events: ["accepted", "delivered"],
    },
    {
      local: "bounce",
      kind: "delivery",
      does: "Hard bounce: the mailbox does not exist. A DSN goes to the sender and the address " +
        "goes on the sandbox's own suppression list (GET /v1/sandbox/suppressions).",
      reply: "550 5.1.1 No such user here (simulated)",
      events: ["accepted", "bounced"],
    },
    {
      local: "mailbox-full",
      kind: "delivery",
      does: "Permanent failure: the mailbox is full (not suppressed: it may empty).",
      reply: "552 5.2.2 Mailbox full (simulated)",
      events: ["accepted", "bounced"],
    },
    {
      local: "defer",
      kind: "delivery",
      does: "A temporary failure, then accepted at the next attempt.",
      reply: "451 4.3.0 Temporary failure, try again (simulated)",
      events: ["accepted", "deferred", "delivered"],
    },
    {
      local: "greylist",
      kind: "delivery",
      does: `Greylisted for ${greylistS} s (POSTERN_SANDBOX_GREYLIST), then accepted; the ` +
        "relay waits the window it names before the retry.",
      reply: greylistReply(greylistS),
      events: ["accepted", "deferred", "delivered"],
    },
    {
      local: "throttle",
      kind: "delivery",
      does: `421 4.7.0 and the connection closed, ${THROTTLE_ATTEMPTS} attempts in a row, then ` +
        "accepted: the simulator site's backoff engages (its concurrency window shrinks, " +
        "visible in GET /v1/queue).",
      reply: "421 4.7.0 Too many messages, slow down (simulated)",
      events: ["accepted", "deferred", "deferred", "delivered"],
    },
    {
      local: "timeout",
      kind: "delivery",
      does: "The simulated MX never answers RCPT TO: the relay's RCPT timeout " +
        "(POSTERN_RCPT_TIMEOUT) ends the attempt; retried until POSTERN_SANDBOX_MAX_AGE, " +
        "then expired.",
      reply: "(no reply)",
      events: ["accepted", "deferred", "…", "expired"],
    },
    {
      local: "tls-required",
      kind: "delivery",
      does: "The simulated MX refuses the recipient unless the session uses STARTTLS; the " +
        "relay's opportunistic TLS delivers it, and the event shows the TLS version.",
      reply: "530 5.7.0 Must issue a STARTTLS command first (simulated, without TLS)",
      events: ["accepted", "delivered"],
    },
    {
      local: "complaint",
      kind: "delivery",
      does: "Delivered, then a feedback report (ARF, abuse) arrives: a `complained` event and " +
        "the address on the sandbox's own suppression list.",
      reply: "250 2.0.0 Delivered (simulated)",
      events: ["accepted", "delivered", "complained"],
    },
    {
      local: "ooo",
      kind: "delivery",
      does: "Delivered, then an out-of-office auto-reply (RFC 3834) goes to the return path; " +
        "it is not a bounce, so nothing else is recorded.",
      reply: "250 2.0.0 Delivered (simulated)",
      events: ["accepted", "delivered"],
    },
    {
      local: "suppressed",
      kind: "delivery",
      does: "Already on the suppression list: never attempted.",
      reply: "Not attempted: the address is on the suppression list (sandbox)",
      events: ["accepted", "suppressed"],
    },
    {
      local: "smtp-421",
      kind: "submission",
      does: "The relay answers RCPT TO with 421 4.3.2 and closes the connection: nothing queued.",
      reply: "421 4.3.2 Service not available, closing channel (sandbox)",
      events: [],
      http: "503 with Retry-After",
    },
    {
      local: "smtp-451",
      kind: "submission",
      does: "The relay takes the whole message, then answers 451 4.3.0 after the final dot: " +
        "nothing queued.",
      reply: "451 4.3.0 Queue temporarily unavailable, try again later (sandbox)",
      events: [],
      http: "503 with Retry-After",
    },
    {
      local: "smtp-slow",
      kind: "submission",
      does: `The 250 after the final dot comes ${slowS} s late (POSTERN_SANDBOX_SLOW_DELAY): ` +
        "test your client's DATA timeout. The message is queued when the 250 is sent (a 250 " +
        "is a promise) and delivered to the simulator.",
      reply: "250 2.0.0 OK queued as <id> (late)",
      events: ["accepted", "delivered"],
      http: "202, as late",
    },
    {
      local: "smtp-552",
      kind: "submission",
      does: "The relay answers 552 5.3.4 after the final dot, as if the message were too " +
        "large: nothing queued.",
      reply: "552 5.3.4 Message too big for system (sandbox)",
      events: [],
      http: "413",
    },
  ];
}

/**
 * The local part of `address` without its `+suffix`, lower-cased, when `address` is at the
 * simulator `domain`; null for every other address.
 */
export function simulatorLocal(address: string, domain: string): string | null {
  const at = address.lastIndexOf("@");
  if (at < 1 || address.slice(at + 1).toLowerCase() !== domain.toLowerCase()) return null;
  const local = address.slice(0, at).toLowerCase();
  const plus = local.indexOf("+");
  return plus > 0 ? local.slice(0, plus) : local;
}

const DELIVERY = new Set<string>([
  "delivered",
  "bounce",
  "mailbox-full",
  "defer",
  "greylist",
  "throttle",
  "timeout",
  "tls-required",
  "complaint",
  "ooo",
  "suppressed",
]);

/**
 * What the simulated MX does for `address`: its behaviour at the simulator domain (an unknown
 * local part there is delivered), and `delivered` for any other address (test-mode mail).
 */
export function deliveryBehavior(address: string, domain: string): DeliveryBehavior {
  const local = simulatorLocal(address, domain);
  return local !== null && DELIVERY.has(local) ? local as DeliveryBehavior : "delivered";
}

/** The submission fault a transaction plays: a recipient's, else the credential's setting. */
export function submissionFault(
  recipients: readonly string[],
  domain: string,
  setting: SubmissionFault | null | undefined,
): SubmissionFault | null {
  for (const r of recipients) {
    const local = simulatorLocal(r, domain);
    if (local && (SUBMISSION_FAULTS as readonly string[]).includes(local)) {
      return local as SubmissionFault;
    }
  }
  return setting ?? null;
}

/**
 * The sandbox's own suppression list of an account: where simulator addresses go when they bounce
 * hard or complain, so the account's real list only ever holds real addresses.
 */
export function sandboxList(account: string): string {
  return `${account}:sandbox`;
}

/** The suppression list `address` belongs on: the sandbox's for a simulator address. */
export function suppressionListFor(account: string, address: string, domain: string): string {
  return simulatorLocal(address, domain) === null ? account : sandboxList(account);
}

/** Whether intake treats `address` as already on the suppression list. */
export function isPresuppressed(address: string, domain: string): boolean {
  return simulatorLocal(address, domain) === "suppressed";
}
