/**
 * What a caller and an operator see when the API fails inside: a 500 whose body names a request
 * id, and one log line with the same id that says what went wrong.
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { createLogger } from "../core/log.ts";
import { appDeps } from "../tests/support/app_deps.ts";
import { sha256 } from "../core/auth/secrets.ts";

Deno.test("a 500 carries a request id in its body and header, and the error is logged under that id", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_errors_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ write: (line) => lines.push(JSON.parse(line)) });
  try {
    const app = createApp(
      await appDeps(kv, { adminTokenHash: sha256("admin-token-0123456789"), log }),
    );
    // A real fault: the store is gone under the running app.
    kv.close();
    const res = await app.request("/v1/messages", {
      headers: { authorization: "Bearer admin-token-0123456789" },
    });
    assert.equal(res.status, 500);
    const body = await res.json();
    assert.equal(body.error.code, "internal");
    const id = body.error.details.request_id;
    assert.match(id, /^req_[0-9a-z]{16}$/);
    assert.equal(res.headers.get("x-request-id"), id);
    assert.ok(!JSON.stringify(body).includes("closed"), "the body does not leak the error");
    const logged = lines.filter((l) => l.event === "http.internal_error");
    assert.equal(logged.length, 1, JSON.stringify(lines));
    assert.equal(logged[0]!.request_id, id);
    assert.equal(logged[0]!.path, "/v1/messages");
    assert.equal(logged[0]!.level, "error");
    assert.ok(String(logged[0]!.err).length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every refusal, from any route, is a JSON body {error:{code,message,details?}} and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_errors_" });
  const kv = await Deno.openKv(`${dir}/postern.kv`);
  try {
    const app = createApp(await appDeps(kv, { adminTokenHash: sha256("admin-token-0123456789") }));
    const admin = { authorization: "Bearer admin-token-0123456789" };
    const cases: [string, Response | Promise<Response>, number, string][] = [
      ["no key", app.request("/v1/messages"), 401, "unauthorized"],
      ["unknown route", app.request("/v1/nothing-here", { headers: admin }), 404, "not_found"],
      ["unknown message", app.request("/v1/messages/01ABC", { headers: admin }), 404, "not_found"],
      [
        "malformed JSON",
        app.request("/v1/credentials", {
          method: "POST",
          headers: { ...admin, "content-type": "application/json" },
          body: "{",
        }),
        400,
        "invalid_request",
      ],
    ];
    for (const [what, pending, status, code] of cases) {
      const res = await pending;
      assert.equal(res.status, status, what);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/, what);
      const body = await res.json();
      assert.deepEqual(Object.keys(body), ["error"], what);
      assert.equal(body.error.code, code, `${what}: ${JSON.stringify(body)}`);
      assert.equal(typeof body.error.message, "string", what);
      assert.deepEqual(
        Object.keys(body.error).filter((k) => !["code", "message", "details"].includes(k)),
        [],
        what,
      );
    }
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
