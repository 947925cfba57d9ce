/**
 * Operating the relay, end to end: graceful shutdown, start-up errors an operator can act on,
 * and an HTTP API that answers every failure in JSON.
 */
import assert from "node:assert/strict";
import {
  type ExitResult,
  type Relay,
  runRelayToExit,
  startRelay,
} from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { queuedId, RawSmtp } from "./support/raw_smtp.ts";
import { countTags, TAG_HEADER, waitUntil } from "./support/operations.ts";

Deno.test("SIGTERM refuses new sessions with 421 4.3.2, lets the open transaction finish with 250, then exits 0", async () => {
  const sink = await startSink();
  const relays: Relay[] = [];
  try {
    const relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
        POSTERN_SHUTDOWN_GRACE: "15s",
      },
    });
    relays.push(relay);
    const open = await RawSmtp.connect(relay.smtpPort);
    await open.hello();
    await open.beginData("app@origin.test", "user@dest.test");
    await open.write(
      `From: app@origin.test\r\nSubject: slow\r\n${TAG_HEADER}: draining\r\n\r\nfirst line\r\n`,
    );

    const stopped = relay.stop("SIGTERM");
    await relay.waitForLog((line) => line.event === "shutdown.start");

    // The client is still trickling its message in; a newcomer is turned away meanwhile.
    await open.write("second line\r\n");
    const late = await RawSmtp.connect(relay.smtpPort);
    const refusal = await late.reply();
    late.close();
    assert.equal(refusal.code, 421, refusal.raw);
    assert.match(refusal.raw, /^421 4\.3\.2 /);

    await open.write("last line\r\n");
    const accepted = await open.endData();
    assert.equal(accepted.code, 250, accepted.raw);
    const id = queuedId(accepted);
    await open.quit();

    assert.deepEqual(await stopped, { code: 0 });
    assert.ok(relay.logs.some((line) => line.event === "shutdown.done"));
    assert.ok(relay.logs.some((line) => line.event === "smtp.accepted" && line.msg === id));

    // What got its 250 during the drain is durable: delivered before the exit or after a restart.
    if (!countTags(sink.messages).has("draining")) relays.push(await relay.restart());
    await waitUntil(() => countTags(sink.messages).get("draining") === 1, "the drained message");
  } finally {
    for (const relay of relays.reverse()) await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

type StartResult = ExitResult;
const startExpectingExit = (env: Record<string, string>) => runRelayToExit(env);

function assertOneLineNaming(result: StartResult, setting: string) {
  const shown = `exit ${result.code}, stderr ${JSON.stringify(result.stderr)}`;
  assert.notEqual(result.code, 0, shown);
  assert.notEqual(result.code, 137, `it was killed for not exiting; ${shown}`);
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, `expected one stderr line; ${shown}`);
  assert.ok(lines[0]!.includes(setting), `the line should name ${setting}; ${shown}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m, `no stack trace; ${shown}`);
  assert.doesNotMatch(result.stdout, /"event":"ready"/, shown);
}

Deno.test("a bad setting stops start-up with a non-zero exit and one stderr line naming it", async () => {
  const cases: [string, string][] = [
    ["POSTERN_SMTP_PORT", "notaport"],
    ["POSTERN_HTTP_PORT", "70000"],
    ["POSTERN_ROUTES", "garbage"],
    ["POSTERN_RETRY_SCHEDULE", "1x"],
    ["POSTERN_MAX_AGE", "forever"],
    ["POSTERN_TRUSTED_NETWORKS", "10.0.0.0/99"],
    ["POSTERN_DNS", "dns.example"],
    ["POSTERN_LOG_LEVEL", "loud"],
  ];
  const results = await Promise.all(
    cases.map(([setting, value]) => startExpectingExit({ [setting]: value })),
  );
  cases.forEach(([setting], i) => assertOneLineNaming(results[i]!, setting));
});

Deno.test("a port already in use stops start-up with one line naming its setting", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = String(taken.addr.port);
    const settings = ["POSTERN_SMTP_PORT", "POSTERN_SMTPS_PORT", "POSTERN_HTTP_PORT"];
    const results = await Promise.all(
      settings.map((setting) => startExpectingExit({ [setting]: port })),
    );
    settings.forEach((setting, i) => {
      assertOneLineNaming(results[i]!, setting);
      assert.match(results[i]!.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    });
  } finally {
    taken.close();
  }
});

/** Fetches from the relay's HTTP port and checks the answer is JSON, never HTML or a stack. */
async function fetchJson(
  relay: Relay,
  path: string,
  init: RequestInit = {},
  // deno-lint-ignore no-explicit-any -- tests index into arbitrary response shapes.
): Promise<{ status: number; json: any }> {
  const response = await fetch(`http://127.0.0.1:${relay.httpPort}${path}`, init);
  const text = await response.text();
  const what = `${init.method ?? "GET"} ${path} → ${response.status} ${text}`;
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/, what);
  assert.doesNotMatch(text, /<html|<!doctype/i, what);
  assert.doesNotMatch(text, /\bat .*\.(ts|js):\d+/, `a stack trace leaked: ${what}`);
  return { status: response.status, json: JSON.parse(text) };
}

function assertApiError(result: { status: number; json: unknown }, status: number, what: string) {
  const shown = `${what}: ${result.status} ${JSON.stringify(result.json)}`;
  assert.equal(result.status, status, shown);
  const error = (result.json as { error?: { code?: unknown; message?: unknown } }).error;
  assert.equal(typeof error?.code, "string", shown);
  assert.equal(typeof error?.message, "string", shown);
}

Deno.test("the HTTP API answers health, unknown routes, bad JSON and bad tokens in JSON", async () => {
  await using relay = await startRelay();
  const admin = { authorization: `Bearer ${relay.adminToken}` };

  const health = await fetchJson(relay, "/healthz");
  assert.equal(health.status, 200);

  assertApiError(await fetchJson(relay, "/no/such/route"), 404, "unknown route");
  assertApiError(await fetchJson(relay, "/v1/nothing", { headers: admin }), 404, "unknown /v1");
  assertApiError(
    await fetchJson(relay, "/healthz", { method: "DELETE" }),
    404,
    "unknown method",
  );

  const malformed = await fetchJson(relay, "/v1/credentials", {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: '{"name": "app",',
  });
  assertApiError(malformed, 400, "malformed JSON");
  const invalid = await fetchJson(relay, "/v1/credentials", {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: JSON.stringify({ name: "", extra: true }),
  });
  assertApiError(invalid, 400, "invalid body");
  const tooLarge = await fetchJson(relay, "/v1/credentials", {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) }),
  });
  assertApiError(tooLarge, 413, "oversized body");

  assertApiError(await fetchJson(relay, "/v1/credentials"), 401, "no bearer");
  for (
    const authorization of [
      "Bearer wrong-token",
      `Basic ${btoa(`admin:${relay.adminToken}`)}`,
      "Bearer",
      `Bearer pst_0123456789abcdef_${"A".repeat(32)}`,
    ]
  ) {
    assertApiError(
      await fetchJson(relay, "/v1/credentials", { headers: { authorization } }),
      401,
      authorization,
    );
  }

  // A credential's API key is a valid bearer: an unknown message is still a JSON 404.
  const created = await fetchJson(relay, "/v1/credentials", {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: JSON.stringify({ name: "app" }),
  });
  assert.equal(created.status, 201);
  const asCredential = { authorization: `Bearer ${created.json.password}` };
  assertApiError(
    await fetchJson(relay, "/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV", { headers: asCredential }),
    404,
    "unknown message",
  );
});
