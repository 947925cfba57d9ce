/**
 * Operating the relay, end to end: graceful shutdown, start-up errors an operator can act on,
 * and an HTTP API that answers every failure in JSON.
 */
import assert from "node:assert/strict";
import {
  type ExitResult,
  type Relay,
  relayEnvironment,
  repoRoot,
  runRelayToExit,
  startRelay,
} from "./support/relay_process.ts";
import { certificateFor } from "./support/tls_certificate.ts";
import { startSink } from "./support/sink.ts";
import { queuedId, SmtpClient } from "./support/smtp_client.ts";
import { countTags, TAG_HEADER, waitUntil } from "./support/operations.ts";

/** A relay that routes everything to a sink and lets loopback relay, with a long shutdown grace. */
function drainingRelay(sinkPort: number): Promise<Relay> {
  return startRelay({
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sinkPort}`,
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_SHUTDOWN_GRACE: "15s",
    },
  });
}

Deno.test("SIGTERM refuses new sessions with 421 4.3.2, lets the open transaction finish with 250, then exits 0", async () => {
  const sink = await startSink();
  const relays: Relay[] = [];
  try {
    const relay = await drainingRelay(sink.port);
    relays.push(relay);
    const open = await SmtpClient.open(relay.smtpPort);
    await open.hello();
    await open.beginData("app@origin.test", "user@dest.test");
    await open.write(
      `From: app@origin.test\r\nSubject: slow\r\n${TAG_HEADER}: draining\r\n\r\nfirst line\r\n`,
    );

    const stopped = relay.stop("SIGTERM");
    await relay.waitForLog((line) => line.event === "shutdown.start");

    // The client is still trickling its message in; a newcomer is turned away meanwhile.
    await open.write("second line\r\n");
    const late = await SmtpClient.open(relay.smtpPort);
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

Deno.test("a misspelt POSTERN_ variable or config-file key stops start-up with a did-you-mean", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify({ smtpPrt: 2525 }));
    const [env, key, unrelated] = await Promise.all([
      runRelayToExit({ POSTERN_SMTP_PROT: "2525" }),
      runRelayToExit({ POSTERN_CONFIG: file }),
      runRelayToExit({ POSTERN_WHATEVER_THIS_IS: "1" }),
    ]);
    assertOneLineNaming(env, "POSTERN_SMTP_PROT");
    assert.match(env.stderr, /did you mean POSTERN_SMTP_PORT\?/);
    assertOneLineNaming(key, "smtpPrt");
    assert.match(key.stderr, /did you mean smtpPort\?/);
    assertOneLineNaming(unrelated, "POSTERN_WHATEVER_THIS_IS");
    assert.match(unrelated.stderr, /unknown setting/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("variables that are not POSTERN_ settings are left alone", async () => {
  await using relay = await startRelay({ env: { DENO_NO_UPDATE_CHECK: "1", POSTERNX: "1" } });
  assert.equal((await relay.api("/healthz")).status, 200);
});

Deno.test("--help lists every setting and --version prints the version, neither starts the relay", async () => {
  const [help, version] = await Promise.all([
    runRelayToExit({}, ["--help"]),
    runRelayToExit({}, ["--version"]),
  ]);
  assert.equal(help.code, 0, help.stderr);
  for (const setting of ["POSTERN_SMTP_PORT", "POSTERN_TLS_CERT", "POSTERN_CONFIG"]) {
    assert.match(help.stdout, new RegExp(`^  ${setting} `, "m"), help.stdout);
  }
  assert.doesNotMatch(help.stdout + help.stderr, /"event":"ready"/);
  assert.equal(version.code, 0, version.stderr);
  const pinned = JSON.parse(await Deno.readTextFile(`${repoRoot}/deno.json`)).version;
  assert.equal(version.stdout.trim(), `postern ${pinned}`);
  assert.doesNotMatch(version.stdout + version.stderr, /"event":"ready"/);
});

Deno.test("a mismatched, swapped, unreadable or expired TLS pair stops start-up with one line naming the setting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_test_tls_" });
  try {
    const good = await certificateFor(["relay.test", "localhost"]);
    const other = await certificateFor(["other.test"]);
    const expired = await certificateFor(["relay.test"], {
      notBefore: new Date(Date.now() - 3 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      return `${dir}/${name}`;
    };
    const cert = await write("cert.pem", good.cert);
    const key = await write("key.pem", good.key);
    const otherKey = await write("other-key.pem", other.key);
    const expiredCert = await write("expired-cert.pem", expired.cert);
    const expiredKey = await write("expired-key.pem", expired.key);
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ POSTERN_TLS_CERT: cert, POSTERN_TLS_KEY: otherKey }, "POSTERN_TLS_KEY", /does not match/],
      [{ POSTERN_TLS_CERT: key, POSTERN_TLS_KEY: cert }, "POSTERN_TLS_CERT", /swapped/],
      [
        { POSTERN_TLS_CERT: `${dir}/missing.pem`, POSTERN_TLS_KEY: key },
        "POSTERN_TLS_CERT",
        /cannot read/,
      ],
      [
        { POSTERN_TLS_CERT: expiredCert, POSTERN_TLS_KEY: expiredKey },
        "POSTERN_TLS_CERT",
        /expired/,
      ],
      [{ POSTERN_TLS_CERT: cert }, "POSTERN_TLS_KEY", /together/],
    ];
    const results = await Promise.all(cases.map(([env]) => runRelayToExit(env)));
    cases.forEach(([, setting, why], i) => {
      assertOneLineNaming(results[i]!, setting);
      assert.match(results[i]!.stderr, why);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM lets a transaction already past MAIL FROM finish with 250 within the grace period", async () => {
  const sink = await startSink();
  const relays: Relay[] = [];
  try {
    const relay = await drainingRelay(sink.port);
    relays.push(relay);
    const open = await SmtpClient.open(relay.smtpPort);
    await open.hello();
    const mail = await open.command("MAIL FROM:<app@origin.test>");
    assert.equal(mail.code, 250, mail.raw);

    const stopped = relay.stop("SIGTERM");
    await relay.waitForLog((line) => line.event === "shutdown.start");

    const rcpt = await open.command("RCPT TO:<user@dest.test>");
    assert.equal(rcpt.code, 250, rcpt.raw);
    const data = await open.command("DATA");
    assert.equal(data.code, 354, data.raw);
    await open.write(`From: app@origin.test\r\n${TAG_HEADER}: past-mail-from\r\n\r\nbody\r\n`);
    const accepted = await open.endData();
    assert.equal(accepted.code, 250, accepted.raw);
    // The next transaction is not begun during the drain.
    const next = await open.command("MAIL FROM:<app@origin.test>");
    assert.match(next.raw, /^421 4\.3\.2 /);
    open.close();

    assert.deepEqual(await stopped, { code: 0 });
    if (!countTags(sink.messages).has("past-mail-from")) relays.push(await relay.restart());
    await waitUntil(() => countTags(sink.messages).get("past-mail-from") === 1, "the message");
  } finally {
    for (const relay of relays.reverse()) await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("deno task admin-token issues a new admin token into a stopped relay's store, and refuses a running one", async () => {
  // No POSTERN_ADMIN_TOKEN: the relay makes one, prints it once and keeps only its hash.
  const first = await startRelay({ env: { POSTERN_ADMIN_TOKEN: "" } });
  const relays: Relay[] = [first];
  try {
    const banner = /Admin token \(shown once, keep it safe\): (\S+)/;
    await waitUntil(() => banner.test(first.stderr), "the admin token on stderr");
    const printed = banner.exec(first.stderr)![1]!;
    // The relay's own settings, as an operator would have them in the shell.
    const env = { ...await relayEnvironment(first.dataDir), POSTERN_ADMIN_TOKEN: "" };
    const issue = async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "-q", "admin-token"],
        cwd: repoRoot,
        clearEnv: true,
        env,
        stdin: "null",
      }).output();
      const text = new TextDecoder();
      return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
    };

    const whileRunning = await issue();
    assert.notEqual(whileRunning.code, 0, whileRunning.stdout);
    assert.match(whileRunning.stderr, /running.*stop it first/);

    await first.stop();
    const issued = await issue();
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    assert.match(token, /^adm_\S+$/);

    const second = await first.restart();
    relays.push(second);
    assert.doesNotMatch(second.stderr, /shown once/, "no new token is printed at restart");
    assert.equal((await second.api("/v1/credentials", { token })).status, 200);
    assert.equal((await second.api("/v1/credentials", { token: printed })).status, 401);
  } finally {
    for (const relay of relays.reverse()) await relay[Symbol.asyncDispose]();
  }
});

Deno.test("SIGTERM to the README's `npx … task start` process stops the relay and frees its ports", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_test_npx_" });
  const env = await relayEnvironment(dataDir);
  const httpPort = Number(env.POSTERN_HTTP_PORT);
  const npx = new Deno.Command("npx", {
    args: ["-y", `deno@${Deno.version.deno}`, "task", "start"],
    cwd: repoRoot,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let relayPid: number | null = null;
  try {
    // The pipe stays open while any process of the chain (npm, sh, deno task, main.ts) runs.
    const lines: string[] = [];
    const drained = (async () => {
      let pending = "";
      for await (const chunk of npx.stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const parts = pending.split("\n");
        pending = parts.pop() ?? "";
        lines.push(...parts);
      }
    })();
    await waitUntil(() => lines.some((line) => line.includes('"event":"ready"')), "ready", {
      timeoutMs: 60_000,
    });
    relayPid = JSON.parse(lines.find((line) => line.includes('"event":"ready"'))!).pid;
    assert.equal(typeof relayPid, "number");

    npx.kill("SIGTERM");
    await npx.status;
    await Promise.race([
      drained,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`still running: ${lines.join("\n")}`)), 30_000)
      ),
    ]);
    assert.ok(lines.some((line) => line.includes('"event":"launcher.exited"')), lines.join("\n"));
    assert.ok(lines.some((line) => line.includes('"event":"shutdown.done"')), lines.join("\n"));
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: httpPort }),
      "the HTTP port is free",
    );
    relayPid = null;
  } finally {
    if (relayPid !== null) {
      try {
        Deno.kill(relayPid, "SIGKILL"); // the relay this test started, by the pid it logged
      } catch {
        // gone
      }
    }
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
