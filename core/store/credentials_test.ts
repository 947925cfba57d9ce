import assert from "node:assert/strict";
import { metrics } from "../metrics.ts";
import {
  addSecret,
  createCredential,
  MAX_SECRETS,
  revokeCredential,
  verifyApiKey,
  verifyLogin,
} from "./credentials.ts";

/** scrypt derivations made by `fn`. */
async function derivations(fn: () => Promise<unknown>): Promise<number> {
  const before = metrics.secretDerivations.value();
  await fn();
  return metrics.secretDerivations.value() - before;
}

Deno.test("verifyLogin() pays the same scrypt work for an unknown user, a wrong password and a revoked credential", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_cred_" });
  const kv = await Deno.openKv(`${dir}/kv`);
  try {
    const one = await createCredential(kv, { account: "default", name: "one" });
    const two = await createCredential(kv, { account: "default", name: "two" });
    const second = await addSecret(kv, two.credential.id);
    assert.ok(second !== null && typeof second !== "string");
    const gone = await createCredential(kv, { account: "default", name: "gone" });
    await revokeCredential(kv, gone.credential.id);
    await verifyLogin(kv, "cr_warmup", "x"); // makes the dummy hash, once per process

    const costs = {
      unknownUser: await derivations(() => verifyLogin(kv, "cr_nobodyhere0000", "guess")),
      wrongPasswordOneSecret: await derivations(() =>
        verifyLogin(kv, one.credential.username, "guess")
      ),
      wrongPasswordTwoSecrets: await derivations(() =>
        verifyLogin(kv, two.credential.username, "guess")
      ),
      revoked: await derivations(() => verifyLogin(kv, gone.credential.username, gone.password)),
      unknownApiKey: await derivations(() => verifyApiKey(kv, "pst_0000000000000000_guess")),
    };
    for (const [path, cost] of Object.entries(costs)) {
      assert.equal(cost, MAX_SECRETS, `${path} paid ${cost} derivations`);
    }
    assert.equal(await verifyLogin(kv, one.credential.username, "guess"), null);
    assert.equal(
      (await verifyLogin(kv, one.credential.username, one.password))?.id,
      one.credential.id,
    );
    assert.equal(
      (await verifyLogin(kv, two.credential.username, second.password))?.id,
      two.credential.id,
    );
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("twenty sessions logging in at once with the same secret pay one scrypt derivation, and twenty same wrong guesses pay one failure's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_cred_" });
  const kv = await Deno.openKv(`${dir}/kv`);
  try {
    const app = await createCredential(kv, { account: "default", name: "app" });
    await verifyLogin(kv, "cr_warmup", "x"); // makes the dummy hash, once per process
    const user = app.credential.username;

    let results: unknown[] = [];
    const good = await derivations(async () => {
      results = await Promise.all(
        Array.from({ length: 20 }, () => verifyLogin(kv, user, app.password)),
      );
    });
    assert.equal(good, 1);
    for (const r of results) assert.equal((r as { id: string } | null)?.id, app.credential.id);

    const bad = await derivations(async () => {
      results = await Promise.all(Array.from({ length: 20 }, () => verifyLogin(kv, user, "guess")));
    });
    assert.equal(bad, MAX_SECRETS);
    assert.deepEqual(results, Array(20).fill(null));

    const unknown = await derivations(async () => {
      results = await Promise.all(
        Array.from({ length: 20 }, () => verifyLogin(kv, "cr_nobodyhere0000", "guess")),
      );
    });
    assert.equal(unknown, MAX_SECRETS);
    assert.deepEqual(results, Array(20).fill(null));

    // The shared result is still checked against each login's own read of the record.
    await revokeCredential(kv, app.credential.id);
    results = await Promise.all(
      Array.from({ length: 5 }, () => verifyLogin(kv, user, app.password)),
    );
    assert.deepEqual(results, Array(5).fill(null));
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
