import assert from "node:assert/strict";
import { decideContent, DEFAULT_CONTENT_POLICY, shortReason } from "./content_policy.ts";

const scan = (score: number, extra: Partial<Parameters<typeof decideContent>[1]> = {}) => ({
  score,
  requiredScore: 15,
  action: "no action",
  passthrough: false,
  smtpMessage: null,
  ...extra,
});

Deno.test("the default policy rejects at rspamd's own threshold and never holds", () => {
  assert.deepEqual(decideContent(DEFAULT_CONTENT_POLICY, scan(3)), {
    action: "accept",
    addHeaders: false,
  });
  assert.deepEqual(decideContent(DEFAULT_CONTENT_POLICY, scan(14.9)).action, "accept");
  assert.deepEqual(decideContent(DEFAULT_CONTENT_POLICY, scan(15)).action, "reject");
});

Deno.test("an account's scores: reject at reject_score, hold between hold_score and it", () => {
  const policy = { ...DEFAULT_CONTENT_POLICY, rejectScore: 10, holdScore: 5, addHeaders: true };
  assert.deepEqual(decideContent(policy, scan(4.99)), { action: "accept", addHeaders: true });
  assert.deepEqual(decideContent(policy, scan(5)), { action: "hold" });
  assert.deepEqual(decideContent(policy, scan(9.99)), { action: "hold" });
  assert.equal(decideContent(policy, scan(10)).action, "reject");
  // A hold score above the reject score never holds: rejection wins.
  assert.equal(decideContent({ ...policy, holdScore: 12 }, scan(11)).action, "reject");
});

Deno.test("rspamd's early reject (GTUBE) is final whatever the account's reject_score", () => {
  const policy = { ...DEFAULT_CONTENT_POLICY, rejectScore: 100 };
  const gtube = scan(15, { action: "reject", passthrough: true, smtpMessage: "Gtube pattern" });
  assert.deepEqual(decideContent(policy, gtube), { action: "reject", reason: "Gtube pattern" });
  // Without the pre-result, rspamd's "reject" recommendation is only its score.
  assert.equal(decideContent(policy, scan(15, { action: "reject" })).action, "accept");
});

Deno.test("an rspamd failure follows on_error: accept unscanned, or tempfail", () => {
  assert.deepEqual(decideContent(DEFAULT_CONTENT_POLICY, { error: "down" }), {
    action: "accept_unscanned",
  });
  assert.deepEqual(
    decideContent({ ...DEFAULT_CONTENT_POLICY, onError: "tempfail" }, { error: "down" }),
    { action: "tempfail" },
  );
});

Deno.test("rspamd's reason is one short printable line in the SMTP reply", () => {
  assert.equal(shortReason("Gtube\r\npattern\x00"), "Gtube pattern");
  assert.equal(shortReason(null), "Message content rejected as spam");
  assert.equal(shortReason("x".repeat(500)).length, 200);
});
