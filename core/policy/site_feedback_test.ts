import assert from "node:assert/strict";
import { backoffRate, feedbackOf } from "./site_feedback.ts";

Deno.test("a throttling reply in an attempt outweighs its deliveries; a block marks the source", () => {
  const delivered = { status: "delivered", category: null };
  const throttled = { status: "deferred", category: "throttled" };
  const blocked = { status: "bounced", category: "policy_block" };
  assert.deepEqual(feedbackOf([delivered, throttled]), {
    throttled: true,
    succeeded: false,
    sourceBlocked: false,
  });
  assert.deepEqual(feedbackOf([delivered]), {
    throttled: false,
    succeeded: true,
    sourceBlocked: false,
  });
  assert.deepEqual(feedbackOf([blocked]), {
    throttled: false,
    succeeded: false,
    sourceBlocked: true,
  });
});

Deno.test("while cooling down a site gets half its own rate, or the backoff rate when it has none", () => {
  const backoff = { count: 60, perMs: 60_000 };
  assert.deepEqual(backoffRate({ count: 10, perMs: 1_000 }, backoff), { count: 10, perMs: 2_000 });
  assert.deepEqual(backoffRate(null, backoff), backoff);
});
