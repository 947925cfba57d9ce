/**
 * What a content scan means for one message, per account (`content_policy`, PATCH
 * /v1/accounts/:id). A pure function of the policy and rspamd's answer (or its failure):
 *
 * - `reject`: refused before the 250 (SMTP 550 5.7.1 with rspamd's short reason, HTTP 422), when
 *   the score reaches `reject_score` (unset: rspamd's own reject threshold), or rspamd stopped
 *   early with a reject of its own (GTUBE, a force_actions rule);
 * - `hold`: accepted (250) but held for an operator, when the score reaches `hold_score`;
 * - `accept`: queued, with rspamd's X-Spam-* headers when `add_headers`;
 * - on an rspamd failure, `on_error`: `accept` (logged and counted) or `tempfail` (451 4.7.1).
 *
 * @module
 */

export interface ContentPolicy {
  /** At or above: refused. null = rspamd's own reject threshold (its `required_score`). */
  rejectScore: number | null;
  /** At or above (and below the reject score): accepted but held. null = never held. */
  holdScore: number | null;
  /** Mail that passes carries rspamd's X-Spam-* result headers. */
  addHeaders: boolean;
  /** What an rspamd failure (down, slow, a bad answer) does to the message. */
  onError: "accept" | "tempfail";
}

export const DEFAULT_CONTENT_POLICY: Readonly<ContentPolicy> = {
  rejectScore: null,
  holdScore: null,
  addHeaders: false,
  onError: "accept",
};

/** The parts of rspamd's answer the decision reads. */
export interface ScanOutcome {
  score: number;
  requiredScore: number;
  action: string;
  passthrough: boolean;
  smtpMessage: string | null;
}

export type ContentDecision =
  | { action: "accept"; addHeaders: boolean }
  | { action: "hold" }
  | { action: "reject"; reason: string }
  | { action: "tempfail" }
  /** rspamd failed and the policy lets mail through unscanned. */
  | { action: "accept_unscanned" };

/** rspamd's reply text is echoed in an SMTP reply: one short line of printable ASCII. */
export function shortReason(text: string | null): string {
  const clean = (text ?? "").replace(/[^\x20-\x7e]/g, " ").replace(/\s+/g, " ").trim();
  return (clean || "Message content rejected as spam").slice(0, 200);
}

export function decideContent(
  policy: ContentPolicy,
  outcome: ScanOutcome | { error: string },
): ContentDecision {
  if ("error" in outcome) {
    return policy.onError === "tempfail" ? { action: "tempfail" } : { action: "accept_unscanned" };
  }
  const rejectAt = policy.rejectScore ?? outcome.requiredScore;
  if (
    (outcome.passthrough && outcome.action === "reject") || outcome.score >= rejectAt
  ) {
    return { action: "reject", reason: shortReason(outcome.smtpMessage) };
  }
  if (policy.holdScore !== null && outcome.score >= policy.holdScore) return { action: "hold" };
  return { action: "accept", addHeaders: policy.addHeaders };
}
