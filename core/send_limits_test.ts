import assert from "node:assert/strict";
import { SendLimits } from "./send_limits.ts";
import { createCredential } from "./store/credentials.ts";
import { countAccepted } from "./store/send_counts.ts";

Deno.test("SendLimits lets a rate's whole count through back to back, then more as the window slides", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 3, 12);
    const limits = new SendLimits(kv, () => now);
    const { credential } = await createCredential(kv, {
      account: "default",
      name: "app",
      scopes: { rateLimit: "3/min" },
    });
    for (let i = 0; i < 3; i++) assert.deepEqual(await limits.take(credential), { ok: true });
    // Three at the start of a minute: the next fits once they weigh less than one whole.
    assert.deepEqual(await limits.take(credential), {
      ok: false,
      reason: "rate",
      retryAfterMs: 80_000,
    });
    now += 80_000;
    assert.deepEqual(await limits.take(credential), { ok: true });
    assert.equal((await limits.take(credential)).ok, false);
    // A changed rate counts afresh.
    assert.deepEqual(await limits.take({ ...credential, rateLimit: "10/min" }), { ok: true });
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

Deno.test("two nodes' SendLimits on one store share a credential's rate", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.UTC(2026, 10, 3, 12);
    const a = new SendLimits(kv, () => now);
    const b = new SendLimits(kv, () => now + 1_000);
    const { credential } = await createCredential(kv, {
      account: "default",
      name: "app",
      scopes: { rateLimit: "4/min" },
    });
    const verdicts = [];
    for (let i = 0; i < 3; i++) {
      verdicts.push((await a.take(credential)).ok, (await b.take(credential)).ok);
    }
    assert.deepEqual(verdicts, [true, true, true, true, false, false]);
  } finally {
    kv.close();
  }
});
