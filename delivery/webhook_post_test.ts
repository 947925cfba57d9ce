import assert from "node:assert/strict";
import { postWebhook } from "./webhook_post.ts";

async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (port: number, seen: { url: string; headers: Headers }[]) => Promise<void>,
) {
  const seen: { url: string; headers: Headers }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push({ url: req.url, headers: new Headers(req.headers) });
    return handler(req);
  });
  try {
    await fn(server.addr.port, seen);
  } finally {
    await server.shutdown();
  }
}

const base = { address: "127.0.0.1", family: 4 as const, headers: {}, timeoutMs: 5_000 };

Deno.test("postWebhook() connects to the checked address whatever the URL's host name says", async () => {
  await withServer(() => new Response("ok"), async (port, seen) => {
    const r = await postWebhook({
      ...base,
      url: new URL(`http://hooks.invalid:${port}/in?x=1`),
      headers: { "webhook-id": "e1" },
      body: '{"a":1}',
    });
    assert.deepEqual(r, { ok: true, status: 200 });
    assert.equal(seen[0]!.headers.get("host"), `hooks.invalid:${port}`);
    assert.equal(seen[0]!.headers.get("webhook-id"), "e1");
    assert.equal(new URL(seen[0]!.url).search, "?x=1");
  });
});

Deno.test("postWebhook() treats a redirect as a failure and does not follow it", async () => {
  await withServer(
    (req) =>
      new URL(req.url).pathname === "/moved"
        ? new Response("", { status: 302, headers: { location: "/elsewhere" } })
        : new Response("followed"),
    async (port, seen) => {
      const r = await postWebhook({
        ...base,
        url: new URL(`http://127.0.0.1:${port}/moved`),
        body: "{}",
      });
      assert.equal(r.ok, false);
      assert.equal(r.status, 302);
      assert.equal(seen.length, 1);
    },
  );
});

Deno.test("postWebhook() reports a 500 and stops reading a huge answer", async () => {
  await withServer(() => new Response("x".repeat(1_000_000), { status: 500 }), async (port) => {
    const r = await postWebhook({
      ...base,
      url: new URL(`http://127.0.0.1:${port}/`),
      body: "{}",
      maxResponseBytes: 1024,
    });
    assert.deepEqual(r, { ok: false, status: 500, error: "HTTP 500" });
  });
});

Deno.test("postWebhook() gives up on an endpoint that never answers", async () => {
  let release!: () => void;
  const hung = new Promise<void>((r) => (release = r));
  await withServer(async () => {
    await hung;
    return new Response("late");
  }, async (port) => {
    const r = await postWebhook({
      ...base,
      url: new URL(`http://127.0.0.1:${port}/`),
      body: "{}",
      timeoutMs: 200,
    });
    release();
    assert.equal(r.ok, false);
    assert.equal(r.status, null);
    assert.match((r as { error: string }).error, /no answer within 200 ms/);
  });
});

Deno.test("postWebhook() reports a refused connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const r = await postWebhook({ ...base, url: new URL(`http://127.0.0.1:${port}/`), body: "{}" });
  assert.equal(r.ok, false);
  assert.match((r as { error: string }).error, /ECONNREFUSED|refused/i);
});
