/**
 * POST /v1/messages through `app.request()`, without a socket: validation, limits, structured
 * errors and idempotency as a caller sees them, on a real KV file.
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import type { HttpDeps } from "./app.ts";
import { sha256 } from "../core/auth/secrets.ts";
import { appDeps } from "../tests/support/app_deps.ts";

const TOKEN = "admin-token-0123456789";

/** The app on a KV file in a temp dir; `await using` closes the store and removes the dir. */
async function sendApp(overrides: Partial<HttpDeps> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "postern_http_send_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  const app = createApp({ ...await appDeps(kv, { adminTokenHash: sha256(TOKEN) }), ...overrides });
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await app.request(path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "content-type": "application/json",
        ...headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    // deno-lint-ignore no-explicit-any -- the API's JSON
    return { status: res.status, headers: res.headers, json: await res.json() as any };
  };
  /** The ids GET /v1/messages lists. */
  const listed = async (): Promise<string[]> => {
    const res = await app.request("/v1/messages", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return (await res.json()).data.map((m: { id: string }) => m.id);
  };
  return {
    app,
    post,
    listed,
    async [Symbol.asyncDispose]() {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const message = { from: "app@origin.test", to: "user@dest.test", subject: "hi", text: "hello" };

/** The structured error every refusal carries: `{error:{code,message,details?}}` and no more. */
function assertError(
  res: { status: number; json: { error?: { code: string; message: string } } },
  status: number,
  code: string,
) {
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.equal(res.json.error?.code, code, JSON.stringify(res.json));
  assert.equal(typeof res.json.error?.message, "string");
  const extra = Object.keys(res.json.error!).filter((k) =>
    !["code", "message", "details"].includes(k)
  );
  assert.deepEqual(extra, [], JSON.stringify(res.json));
}

Deno.test("a valid JSON send is accepted with 202 and a message id", async () => {
  await using t = await sendApp();
  const res = await t.post("/v1/messages", message);
  assert.equal(res.status, 202, JSON.stringify(res.json));
  assert.match(res.json.id, /^\S+$/);
});

Deno.test("a send that is not JSON, or misses a field, or smuggles a header is refused with 400 naming the problem", async () => {
  await using t = await sendApp();
  assertError(await t.post("/v1/messages", "{not json"), 400, "invalid_request");
  const missing = await t.post("/v1/messages", { to: "user@dest.test", text: "x" });
  assertError(missing, 400, "invalid_request");
  assert.ok(
    JSON.stringify(missing.json.error.details).includes("from"),
    JSON.stringify(missing.json),
  );
  assertError(
    await t.post("/v1/messages", { ...message, subject: "Hi\r\nBcc: victim@dest.test" }),
    400,
    "invalid_request",
  );
  assertError(
    await t.post("/v1/messages", { ...message, to: "not an address" }),
    400,
    "invalid_request",
  );
});

Deno.test("one recipient over the configured limit is refused with 400; at the limit the send is accepted", async () => {
  await using t = await sendApp({ maxRecipients: 3 });
  const to = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@dest.test`);
  assert.equal((await t.post("/v1/messages", { ...message, to: to(3) })).status, 202);
  assertError(await t.post("/v1/messages", { ...message, to: to(4) }), 400, "invalid_request");
});

Deno.test("a message over the size limit is refused with 413 before anything is queued", async () => {
  // appDeps sets a 1 KiB message size limit.
  await using t = await sendApp();
  const res = await t.post("/v1/messages", { ...message, text: "x".repeat(4096) });
  assertError(res, 413, "payload_too_large");
  assert.deepEqual(await t.listed(), [], "nothing was queued");
});

Deno.test("without a valid key the answer is 401 with the structured error, and an unknown path is a JSON 404", async () => {
  await using t = await sendApp();
  assertError(
    await t.post("/v1/messages", message, { authorization: "Bearer wrong" }),
    401,
    "unauthorized",
  );
  const missing = await t.app.request("/v1/no-such-thing", {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
});

Deno.test("a repeated Idempotency-Key returns the first id; another body under it is a 409 conflict; a malformed key is a 400", async () => {
  await using t = await sendApp();
  const key = { "idempotency-key": "order-42" };
  const first = await t.post("/v1/messages", message, key);
  assert.equal(first.status, 202, JSON.stringify(first.json));
  const again = await t.post("/v1/messages", message, key);
  assert.equal(again.status, 202, JSON.stringify(again.json));
  assert.equal(again.json.id, first.json.id, "the repeat answers the first id");
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(await t.listed(), [first.json.id], "the repeat queued nothing");
  assertError(
    await t.post("/v1/messages", { ...message, subject: "other" }, key),
    409,
    "conflict",
  );
  assertError(
    await t.post("/v1/messages", message, { "idempotency-key": "has space" }),
    400,
    "invalid_request",
  );
});

Deno.test("a batch answers one result per message, a refusal in place of the message it refuses", async () => {
  await using t = await sendApp();
  const res = await t.post("/v1/messages/batch", [message, { ...message, from: "" }, message]);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  assert.deepEqual(res.json.map((r: { status: number }) => r.status), [202, 400, 202]);
  assert.equal(res.json[1].error.code, "invalid_request");
});
