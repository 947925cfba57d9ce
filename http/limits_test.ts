/**
 * The HTTP limits through `app.request()`, without a socket: body size, JSON nesting, the
 * per-key request rate and the failed-key lockout, each answered with the structured error.
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from "./limits.ts";
import { sha256 } from "../core/auth/secrets.ts";
import { appDeps } from "../tests/support/app_deps.ts";

const TOKEN = "admin-token-0123456789";

async function limitedApp(limits: Partial<HttpLimits> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "postern_http_limits_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  const deps = await appDeps(kv, { adminTokenHash: sha256(TOKEN) });
  const app = createApp({ ...deps, httpLimits: { ...DEFAULT_HTTP_LIMITS, ...limits } });
  const request = async (path: string, init: { body?: string; token?: string } = {}) => {
    const res = await app.request(path, {
      method: init.body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${init.token ?? TOKEN}`,
        "content-type": "application/json",
      },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
    // deno-lint-ignore no-explicit-any -- the API's JSON
    return { status: res.status, headers: res.headers, json: await res.json() as any };
  };
  return {
    request,
    async [Symbol.asyncDispose]() {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a request body over the limit is refused with 413 payload_too_large", async () => {
  await using t = await limitedApp({ maxBody: 2048 });
  const body = JSON.stringify({ name: "x".repeat(4096) });
  const res = await t.request("/v1/credentials", { body });
  assert.equal(res.status, 413, JSON.stringify(res.json));
  assert.equal(res.json.error.code, "payload_too_large");
});

Deno.test("a JSON body nested past the limit is refused with 400 invalid_json before it is parsed", async () => {
  await using t = await limitedApp({ maxJsonDepth: 4 });
  const deep = "[".repeat(6) + "]".repeat(6);
  const res = await t.request("/v1/credentials", { body: `{"name":"x","extra":${deep}}` });
  assert.equal(res.status, 400, JSON.stringify(res.json));
  assert.equal(res.json.error.code, "invalid_json");
  const shallow = await t.request("/v1/credentials", { body: JSON.stringify({ name: "ok" }) });
  assert.equal(shallow.status, 201, JSON.stringify(shallow.json));
});

Deno.test("past its rate a key is answered 429 rate_limited with Retry-After", async () => {
  // One a minute (a burst of one second's worth, at least one): the second request in a row is
  // over, however slowly the test runs.
  await using t = await limitedApp({ rate: { count: 1, perMs: 60_000 } });
  const statuses: number[] = [];
  let last;
  for (let i = 0; i < 2; i++) {
    last = await t.request("/v1/credentials");
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [200, 429]);
  assert.equal(last!.json.error.code, "rate_limited");
  assert.ok(Number(last!.headers.get("retry-after")) >= 1);
  assert.ok(last!.json.error.details.retry_after_s >= 1);
});

Deno.test("after the limit of wrong keys the client is locked out with 429, even with the right key", async () => {
  await using t = await limitedApp({ authFailureLimit: 2, authLockoutMs: 600_000 });
  for (let i = 0; i < 2; i++) {
    const wrong = await t.request("/v1/credentials", { token: `wrong-${i}` });
    assert.equal(wrong.status, 401, JSON.stringify(wrong.json));
    assert.equal(wrong.json.error.code, "unauthorized");
  }
  const locked = await t.request("/v1/credentials");
  assert.equal(locked.status, 429, JSON.stringify(locked.json));
  assert.ok(Number(locked.headers.get("retry-after")) >= 1);
});
