import assert from "node:assert/strict";
import {
  createDashboardSession,
  deleteDashboardSession,
  getDashboardSession,
  switchSessionAccount,
} from "./dashboard_sessions.ts";
import { keys } from "./keys.ts";

Deno.test("a dashboard session is found by its cookie token until it expires or is signed out", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t0 = Date.UTC(2026, 11, 5, 9);
    const { token, session } = await createDashboardSession(
      kv,
      {
        kind: "admin",
        account: "default",
        credentialId: null,
      },
      3_600_000,
      t0,
    );
    assert.equal((await getDashboardSession(kv, token, t0 + 1))?.csrf, session.csrf);
    assert.equal(await getDashboardSession(kv, token, t0 + 3_600_000), null, "expired");
    assert.equal(await getDashboardSession(kv, "x".repeat(43), t0 + 1), null, "unknown token");

    // The store holds no cookie token: only its digest names the session.
    for await (const e of kv.list({ prefix: ["dash_session"] })) {
      assert.notEqual(e.key[1], token);
      assert.ok(!JSON.stringify(e.value).includes(token));
    }
    assert.ok(await switchSessionAccount(kv, token, "acme", t0 + 2));
    assert.equal((await getDashboardSession(kv, token, t0 + 3))?.account, "acme");
    await deleteDashboardSession(kv, token);
    assert.equal(await getDashboardSession(kv, token, t0 + 4), null, "signed out");
    assert.equal(keys.dashboardSession("d")[0], "dash_session");
  } finally {
    kv.close();
  }
});

Deno.test("an API key's dashboard session cannot be pointed at another account", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const { token } = await createDashboardSession(kv, {
      kind: "credential",
      account: "acme",
      credentialId: "cr_0123456789abcdef",
    }, 60_000);
    assert.equal(await switchSessionAccount(kv, token, "default"), false);
    assert.equal((await getDashboardSession(kv, token))?.account, "acme");
  } finally {
    kv.close();
  }
});
