/**
 * The send API end to end: JSON built into MIME, raw MIME, batches, idempotency over HTTP and
 * SMTP, and header injection refused. Mail goes through the real relay to a loopback sink.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startRelayWithSinks } from "./support/relay_fixture.ts";
import type { Relay } from "./support/relay_process.ts";
import type { ReceivedMessage } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { waitUntil } from "./support/operations.ts";
import { getMessage } from "./support/relay_api.ts";
import { assertError, call } from "./support/tenants.ts";

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { POSTERN_EVENT_SETTLE: "200ms", ...extra };
}

async function post(relay: Relay, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`http://127.0.0.1:${relay.httpPort}/v1/messages`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${relay.adminToken}`,
      "content-type": "application/json",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text), headers: res.headers, text };
}

/** The header block of a received message, unfolded, as name → values. */
function headersOf(m: ReceivedMessage): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of m.headers.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    out.set(name, [...(out.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return out;
}

Deno.test("a JSON message is built into MIME and delivered to every recipient, Bcc on the envelope only", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const png = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 0, 1, 2, 3]);
  const res = await post(relay, {
    from: { name: "Shop Ünicode", address: "shop@origin.test" },
    to: "alice@dest.test",
    cc: ["carol@dest.test"],
    bcc: "bob@dest.test",
    reply_to: "help@origin.test",
    subject: "Your order — №42",
    text: "Thanks for your order.",
    html: '<p>Thanks! <img src="cid:logo@origin.test"></p>',
    headers: { "List-Unsubscribe": "<https://origin.test/u/1>", "X-Campaign": "spring" },
    attachments: [
      { filename: "invoice.txt", content: btoa("total: 42"), content_type: "text/plain" },
      {
        filename: "logo.png",
        content: Buffer.from(png).toString("base64"),
        content_type: "image/png",
        cid: "logo@origin.test",
      },
    ],
    tags: ["orders"],
    metadata: { order: "42" },
  });
  assert.equal(res.status, 202, res.text);
  assert.match(res.json.id, /^[0-9A-Z]{26}$/);
  const [message] = await sink.waitFor(1);
  assert.deepEqual(
    [...message!.to].sort(),
    ["alice@dest.test", "bob@dest.test", "carol@dest.test"],
  );
  assert.equal(message!.from, "shop@origin.test");
  const h = headersOf(message!);
  assert.equal(h.get("bcc"), undefined, "Bcc stays off the headers");
  assert.deepEqual(h.get("to"), ["alice@dest.test"]);
  assert.deepEqual(h.get("cc"), ["carol@dest.test"]);
  assert.deepEqual(h.get("reply-to"), ["help@origin.test"]);
  assert.deepEqual(h.get("list-unsubscribe"), ["<https://origin.test/u/1>"]);
  assert.match(h.get("from")![0]!, /^=\?UTF-8\?.*<shop@origin\.test>$/);
  assert.match(h.get("subject")![0]!, /^=\?UTF-8\?/);
  assert.ok(h.get("received")![0]!.includes("with HTTP"), "traced as HTTP");
  assert.ok(message!.text.includes("Content-ID: <logo@origin.test>"));
  assert.ok(message!.text.includes(Buffer.from(png).toString("base64")));
  assert.ok(message!.text.includes("filename=invoice.txt"));

  const search = await relay.api("/v1/messages?tag=orders");
  assert.equal(search.json.data[0].id, res.json.id);
  assert.deepEqual(search.json.data[0].metadata, { order: "42" });
});

Deno.test("header injection and address tricks are refused with 400, and nothing is queued", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const base = { from: "app@origin.test", to: "user@dest.test", text: "hi" };
  const cases: [string, unknown][] = [
    ["CRLF in subject", { ...base, subject: "Hi\r\nBcc: victim@dest.test" }],
    ["LF in subject", { ...base, subject: "Hi\nX-Evil: 1" }],
    ["two addresses in one", { ...base, to: "a@dest.test, b@dest.test" }],
    ["display name in the string", { ...base, to: "Boss <boss@dest.test>" }],
    ["angle brackets", { ...base, from: "<app@origin.test>" }],
    ["name that reads as an address", {
      ...base,
      from: { name: "ceo@bank.test", address: "app@origin.test" },
    }],
    ["CR in a display name", { ...base, from: { name: "A\rB", address: "app@origin.test" } }],
    ["LF in a header value", { ...base, headers: { "X-Note": "a\nBcc: x@dest.test" } }],
    ["reserved header", { ...base, headers: { Bcc: "x@dest.test" } }],
    ["bad header name", { ...base, headers: { "X Bad": "1" } }],
    ["CRLF in reply_to", { ...base, reply_to: "a@dest.test\r\nBcc: x@dest.test" }],
    ["attachment name with a path", {
      ...base,
      attachments: [{ filename: "../x", content: "aGk=" }],
    }],
    ["bad base64", { ...base, attachments: [{ filename: "x", content: "***" }] }],
    ["no recipient", { from: "app@origin.test", text: "hi" }],
    ["unknown field", { ...base, priority: "high" }],
    ["metadata with a newline", { ...base, metadata: { a: "1\n2" } }],
  ];
  for (const [what, body] of cases) {
    const res = await post(relay, body);
    assert.equal(res.status, 400, `${what}: ${res.text}`);
    assert.equal(res.json.error.code, "invalid_request", what);
    assert.equal(typeof res.json.error.message, "string");
  }
  const search = await relay.api("/v1/messages");
  assert.deepEqual(search.json.data, [], "nothing was queued");
  assert.equal(sink.messages.length, 0);
});

Deno.test("POSTERN_MAX_RECIPIENTS limits an HTTP send as it limits SMTP: one over is refused with 400, JSON or raw", async () => {
  await using fx = await startRelayWithSinks({ env: env({ POSTERN_MAX_RECIPIENTS: "100" }) });
  const { relay, sink } = fx;
  try {
    const addresses = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@dest.test`);
    const json = await post(relay, { from: "app@origin.test", to: addresses(101), text: "hi" });
    assert.equal(json.status, 400, json.text);
    assert.equal(json.json.error.code, "invalid_request");
    assert.match(JSON.stringify(json.json.error.details), /at most 100 recipients/);
    const query = addresses(101).map((a) => `to=${encodeURIComponent(a)}`).join("&");
    const raw = await fetch(
      `http://127.0.0.1:${relay.httpPort}/v1/messages?from=app%40origin.test&${query}`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${relay.adminToken}`,
          "content-type": "message/rfc822",
        },
        body: "From: app@origin.test\r\nSubject: hi\r\n\r\nhi\r\n",
      },
    );
    const rawText = await raw.text();
    assert.equal(raw.status, 400, rawText);
    assert.match(rawText, /at most 100 recipients/);
    const ok = await post(relay, { from: "app@origin.test", to: addresses(100), text: "hi" });
    assert.equal(ok.status, 202, ok.text);
  } finally {
    await sink.close();
  }
});

Deno.test("a repeated Idempotency-Key returns the first id and queues nothing; another body under it is a conflict", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const body = { from: "app@origin.test", to: "user@dest.test", subject: "once", text: "hi" };
  const first = await post(relay, body, { "idempotency-key": "order-42" });
  assert.equal(first.status, 202, first.text);
  const again = await post(relay, body, { "idempotency-key": "order-42" });
  assert.equal(again.status, 202);
  assert.equal(again.json.id, first.json.id);
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  const conflict = await post(relay, { ...body, subject: "other" }, {
    "idempotency-key": "order-42",
  });
  assert.equal(conflict.status, 409, conflict.text);
  assert.equal(conflict.json.error.code, "conflict");

  // Concurrent repeats (one group commit, or several): one message, one id.
  const burst = await Promise.all(
    Array.from({ length: 8 }, () => post(relay, body, { "idempotency-key": "burst-1" })),
  );
  assert.ok(burst.every((r) => r.status === 202), burst.map((r) => r.text).join());
  assert.equal(new Set(burst.map((r) => r.json.id)).size, 1);

  await sink.waitFor(2);
  await waitUntil(async () => (await relay.api("/v1/messages")).json.data.length === 2, "2");
  assert.equal((await relay.api("/v1/messages")).json.data.length, 2);
  const bad = await post(relay, body, { "idempotency-key": "has space" });
  assert.equal(bad.status, 400);
});

Deno.test("over SMTP, X-Postern-Idempotency-Key dedupes and X-Postern-Tags tags; both are removed", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const headers = ["X-Postern-Idempotency-Key: smtp-7", "X-Postern-Tags: welcome, smtp"];
  const [a] = await submit(relay, [{
    from: "a@origin.test",
    to: "u@dest.test",
    tag: "i1",
    headers,
  }]);
  const [b] = await submit(relay, [{
    from: "a@origin.test",
    to: "u@dest.test",
    tag: "i1",
    headers,
  }]);
  assert.equal(a, b, "the repeat is answered with the first queue id");
  const [m] = await sink.waitFor(1);
  assert.ok(!/x-postern-idempotency-key|x-postern-tags/i.test(m!.headers), m!.headers);
  const tagged = await relay.api("/v1/messages?tag=smtp");
  assert.deepEqual(tagged.json.data.map((x: { id: string }) => x.id), [a]);
  assert.deepEqual(tagged.json.data[0].tags, ["welcome", "smtp"]);
  await getMessage(relay, a!);
  assert.equal(sink.messages.length, 1);
});

Deno.test("a batch answers one result per message, failures included", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const res = await fetch(`http://127.0.0.1:${relay.httpPort}/v1/messages/batch`, {
    method: "POST",
    headers: { authorization: `Bearer ${relay.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify([
      { from: "app@origin.test", to: "one@dest.test", text: "1" },
      { from: "app@origin.test", to: "two@dest.test\r\nBcc: x@dest.test", text: "2" },
      { from: "app@origin.test", to: "three@dest.test", text: "3" },
    ]),
  });
  assert.equal(res.status, 200);
  const results = await res.json();
  assert.deepEqual(results.map((r: { status: number }) => r.status), [202, 400, 202]);
  assert.equal(results[1].error.code, "invalid_request");
  assert.match(results[0].id, /^[0-9A-Z]{26}$/);
  await sink.waitFor(2);
  const tooMany = await call(relay, "/v1/messages/batch", {
    body: Array.from({ length: 501 }, () => ({})),
  });
  assertError(tooMany, 400, "invalid_request");
});

Deno.test("a raw MIME upload is queued as written; its envelope comes from the query or its headers", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const raw = [
    "From: App <app@origin.test>",
    "To: alice@dest.test",
    "Cc: Carol <carol@dest.test>",
    "Subject: raw",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Body as written.",
    "",
  ].join("\r\n");
  const upload = (body: string, query = "") =>
    fetch(`http://127.0.0.1:${relay.httpPort}/v1/messages${query}`, {
      method: "POST",
      headers: { authorization: `Bearer ${relay.adminToken}`, "content-type": "message/rfc822" },
      body,
    });
  const res = await upload(raw);
  assert.equal(res.status, 202, await res.clone().text());
  const [m] = await sink.waitFor(1);
  assert.deepEqual([...m!.to].sort(), ["alice@dest.test", "carol@dest.test"]);
  // Our trace and completion headers are added around it; what the caller wrote is untouched.
  const [head, body] = raw.split("\r\n\r\n");
  assert.ok(m!.text.includes(head + "\r\n"), m!.text);
  assert.ok(m!.text.endsWith("\r\n\r\n" + body), m!.text);

  const routed = await upload(raw, "?from=bounce@origin.test&to=dave@dest.test&tag=raw");
  assert.equal(routed.status, 202);
  await sink.waitFor(2);
  assert.deepEqual(sink.messages[1]!.to, ["dave@dest.test"]);
  assert.equal(sink.messages[1]!.from, "bounce@origin.test");

  const withBcc = await upload(raw.replace("Subject: raw", "Bcc: eve@dest.test\r\nSubject: raw"));
  assert.equal(withBcc.status, 400);
  assert.equal((await withBcc.json()).error.code, "invalid_request");
});

Deno.test("a credential key sends under its own scopes; the admin token sends for the default account", async () => {
  await using fx = await startRelayWithSinks({
    env: env(),
    credential: { domains: ["origin.test"] },
  });
  const { relay, sink } = fx;
  const scoped = fx.credential!;
  const ok = await call(relay, "/v1/messages", {
    token: scoped.password,
    body: { from: "app@origin.test", to: "u@dest.test", text: "hi" },
  });
  assert.equal(ok.status, 202, ok.text);
  const outside = await call(relay, "/v1/messages", {
    token: scoped.password,
    body: { from: "app@elsewhere.test", to: "u@dest.test", text: "hi" },
  });
  assertError(outside, 403, "forbidden");
  const nobody = await call(relay, "/v1/messages", {
    token: "pst_nope",
    body: { from: "app@origin.test", to: "u@dest.test", text: "hi" },
  });
  assertError(nobody, 401, "unauthorized");
  await sink.waitFor(1);
  const view = await getMessage(relay, ok.json.id);
  assert.equal(view.via, "http");
});

Deno.test("/openapi.json is generated from the request schemas and /docs renders it", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const res = await fetch(`http://127.0.0.1:${relay.httpPort}/openapi.json`);
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.openapi, "3.1.0");
  const send = doc.paths["/v1/messages"].post.requestBody.content["application/json"].schema;
  assert.equal(send.additionalProperties, false, "strict schemas reject unknown fields");
  assert.deepEqual(send.required, ["from"]);
  for (const field of ["to", "cc", "bcc", "reply_to", "attachments", "tags", "metadata"]) {
    assert.ok(field in send.properties, field);
  }
  const webhook = doc.paths["/v1/webhooks"].post.requestBody.content["application/json"].schema;
  assert.deepEqual(webhook.properties.events.items.enum, [
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "suppressed",
    "complained",
    "expired",
    "failed",
    "held",
    "released",
    "dropped",
    "suspended",
  ]);
  const params = doc.paths["/v1/messages"].get.parameters.map((p: { name: string }) => p.name);
  assert.deepEqual(params, [
    "recipient",
    "from",
    "status",
    "tag",
    "credential",
    "subject",
    "since",
    "until",
    "cursor",
    "limit",
  ]);
  const docs = await fetch(`http://127.0.0.1:${relay.httpPort}/docs`);
  assert.match(docs.headers.get("content-type") ?? "", /^text\/html/);
  const html = await docs.text();
  assert.ok(html.includes("/v1/webhooks/{id}/replay") && html.includes("Idempotency-Key"));
  assert.ok(!/<script/i.test(html), "no scripts");
});

Deno.test("250 recipients at one domain go out in transactions of at most 100, each recorded", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay, sink } = fx;
  const to = Array.from({ length: 250 }, (_, i) => `user${i}@dest.test`);
  const res = await post(relay, { from: "app@origin.test", to, subject: "many", text: "hi" });
  assert.equal(res.status, 202, res.text);
  await waitUntil(
    () => sink.messages.reduce((n, m) => n + m.to.length, 0) >= 250,
    "every recipient at the sink",
  );
  assert.deepEqual(sink.messages.map((m) => m.to.length).sort((a, b) => b - a), [100, 100, 50]);
  await waitUntil(
    async () =>
      (await getMessage(relay, res.json.id)).recipients.every((r) => r.status === "delivered"),
    "every recipient recorded as delivered",
  );
  assert.equal((await getMessage(relay, res.json.id)).events.length, 251);
});

Deno.test("a send may carry attachments up to the message size limit; past it the answer is 413", async () => {
  await using fx = await startRelayWithSinks({
    env: env({ POSTERN_MAX_MESSAGE_SIZE: String(3 * 1024 * 1024) }),
  });
  const { relay, sink } = fx;
  const bytes = (n: number) => Buffer.alloc(n, 7).toString("base64");
  const message = (n: number) => ({
    from: "app@origin.test",
    to: "u@dest.test",
    text: "see attached",
    attachments: [{ filename: "blob.bin", content: bytes(n) }],
  });
  const ok = await post(relay, message(2 * 1024 * 1024));
  assert.equal(ok.status, 202, ok.text);
  const [m] = await sink.waitFor(1);
  assert.ok(m!.raw.length > 2 * 1024 * 1024);
  const big = await post(relay, message(5 * 1024 * 1024));
  assert.equal(big.status, 413, big.text);
  assert.equal(big.json.error.code, "payload_too_large");
});
