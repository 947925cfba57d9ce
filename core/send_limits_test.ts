import assert from "node:assert/strict";
import { SendLimits } from "./send_limits.ts";
import { createCredential } from "./store/credentials.ts";
import { countAccepted } from "./store/send_counts.ts";

Deno.test("SendLimits lets a rate's whole count through back to back, then spaces it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 3, 12);
    const limits = new SendLimits(kv, () => now);
    const { credential } = await createCredential(kv, {
      account: "default",
      name: "app",
      scopes: { rateLimit: "3/min" },
    });
    for (let i = 0; i < 3; i++) assert.deepEqual(limits.take(credential), { ok: true });
    assert.deepEqual(limits.take(credential), {
      ok: false,
      reason: "rate",
      retryAfterMs: 20_000,
    });
    now += 20_000;
    assert.deepEqual(limits.take(credential), { ok: true });
    // A changed rate starts afresh.
    assert.deepEqual(limits.take({ ...credential, rateLimit: "10/min" }), { ok: true });
  } finally {
    kv.close();
  }
});

Deno.test("SendLimits refuses recipients past what is left of the day's quota, until the next UTC day", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 3, 23, 0);
    const limits = new SendLimits(kv, () => now);
    const { credential } = await createCredential(kv, {
      account: "default",
      name: "app",
      scopes: { dailyQuota: 3 },
    });
    assert.deepEqual(await limits.quota(credential, 4), {
      ok: false,
      reason: "quota",
      retryAfterMs: 3_600_000,
    });
    assert.deepEqual(await limits.quota(credential, 3), { ok: true });
    const op = kv.atomic();
    countAccepted(op, credential.id, now, 2);
    await op.commit();
    assert.deepEqual(await limits.quota(credential, 1), { ok: true });
    assert.deepEqual(await limits.quota(credential, 2), {
      ok: false,
      reason: "quota",
      retryAfterMs: 3_600_000,
    });
    now += 3_600_000;
    assert.deepEqual(await limits.quota(credential, 3), { ok: true });
  } finally {
    kv.close();
  }
});
