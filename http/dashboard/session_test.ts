import assert from "node:assert/strict";
import { Hono } from "hono";
import { setSessionCookie } from "./session.ts";
import { OneTimeReveals } from "./reveal.ts";

Deno.test("the session cookie is Secure when the dashboard is reached over TLS, and only then", async () => {
  const app = new Hono();
  app.get("/dashboard/x", (c) => {
    setSessionCookie(c, "token");
    return c.text("ok");
  });
  const tls = await app.request("https://relay.example/dashboard/x");
  assert.match(tls.headers.get("set-cookie") ?? "", /; Secure/);
  assert.match(tls.headers.get("set-cookie") ?? "", /HttpOnly/);
  const plain = await app.request("http://relay.example/dashboard/x");
  assert.doesNotMatch(plain.headers.get("set-cookie") ?? "", /Secure/);
});

Deno.test("a secret put aside for one page is given once, to the session that made it", () => {
  const reveals = new OneTimeReveals<string>();
  const id = reveals.put("session-a", "pst_secret", 1_000);
  assert.equal(reveals.take("session-b", id, 1_001), null, "another session gets nothing");
  assert.equal(reveals.take("session-a", id, 1_002), "pst_secret");
  assert.equal(reveals.take("session-a", id, 1_003), null, "a reload gets nothing");
  const late = reveals.put("session-a", "pst_late", 1_000);
  assert.equal(reveals.take("session-a", late, 1_000 + 10 * 60_000), null, "nor does a late one");
});
