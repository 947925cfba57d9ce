import assert from "node:assert/strict";
import { freePort, repoRoot, runCommand, startRelay } from "./relay_process.ts";

const fakeRelay = new URL("./testdata/fake_relay.ts", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("repoRoot is the directory holding deno.json", async () => {
  assert.ok(await exists(`${repoRoot}/deno.json`));
  assert.ok(!repoRoot.endsWith("/"));
});

Deno.test("freePort() returns a port that can be bound on 127.0.0.1", async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  listener.close();
});

Deno.test("runCommand() passes stdin and env, and returns the exit code", async () => {
  const result = await runCommand("sh", ["-c", 'cat; echo "[$GREETING]" >&2; exit 7'], {
    stdin: "from stdin\n",
    env: { GREETING: "hello" },
  });
  assert.deepEqual(result, { code: 7, stdout: "from stdin\n", stderr: "[hello]\n" });
});

Deno.test("runCommand() kills a program that outlives its timeout", async () => {
  const started = Date.now();
  await assert.rejects(
    runCommand("sh", ["-c", "echo begun; exec sleep 30"], { timeoutMs: 200 }),
    /Cannot finish 'sh -c echo begun; exec sleep 30' as it ran past 200 ms .*begun/,
  );
  assert.ok(Date.now() - started < 5000);
});

Deno.test("runCommand() rejects with NotFound for a missing program", async () => {
  await assert.rejects(runCommand("postern-no-such-program", []), Deno.errors.NotFound);
});

Deno.test("startRelay() passes the contract env and resolves on the ready line", async () => {
  Deno.env.set("POSTERN_LEAK", "from the test runner's shell");
  try {
    await using relay = await startRelay({ entryPoint: fakeRelay });
    const ready = await relay.waitForLog((line) => line.event === "ready");
    assert.equal(ready.hostname, "relay.test");
    assert.equal(ready.inherited_postern, null);
    assert.equal(ready.boots, 1);
    assert.ok(relay.pid > 0);
    assert.equal(new Set([relay.smtpPort, relay.smtpsPort, relay.httpPort]).size, 3);
    assert.match(relay.adminToken, /^[0-9a-f]{48}$/);
    assert.ok(await exists(`${relay.dataDir}/boots`));

    const connection = await Deno.connect({ hostname: "127.0.0.1", port: relay.smtpPort });
    connection.close();
  } finally {
    Deno.env.delete("POSTERN_LEAK");
  }
});

Deno.test("startRelay() api() sends the admin token and JSON bodies", async () => {
  await using relay = await startRelay({ entryPoint: fakeRelay });
  const get = await relay.api("/v1/status");
  assert.equal(get.status, 200);
  assert.deepEqual(get.json, { method: "GET", path: "/v1/status", body: null });

  const post = await relay.api("/v1/things", { body: { a: 1 } });
  assert.deepEqual(post.json, { method: "POST", path: "/v1/things", body: { a: 1 } });

  const put = await relay.api("/v1/things/1", { method: "PUT", body: [1] });
  assert.equal(put.json.method, "PUT");

  assert.equal((await relay.api("/v1/status", { token: "wrong" })).status, 401);
  assert.equal((await relay.api("/v1/status", { token: "" })).status, 401);
});

Deno.test("startRelay() stop() sends SIGTERM and returns the exit code", async () => {
  await using relay = await startRelay({ entryPoint: fakeRelay });
  assert.deepEqual(await relay.stop(), { code: 0 });
  assert.ok(relay.logs.some((line) => line.event === "stopping"));
  // Stopping twice is harmless and reports the same exit.
  assert.deepEqual(await relay.stop(), { code: 0 });
});

Deno.test("startRelay() kill9() then restart() keeps the data dir, ports and env", async () => {
  const first = await startRelay({ entryPoint: fakeRelay, env: { FAKE_RELAY_EXTRA: "one" } });
  await first.kill9();
  assert.ok(!first.logs.some((line) => line.event === "stopping"));
  assert.deepEqual(await first.stop(), { code: 137 });

  await using second = await first.restart({ POSTERN_HOSTNAME: "second.test" });
  const ready = await second.waitForLog((line) => line.event === "ready");
  assert.equal(ready.boots, 2);
  assert.equal(ready.extra, "one");
  assert.equal(ready.hostname, "second.test");
  assert.equal(second.dataDir, first.dataDir);
  assert.deepEqual(
    [second.smtpPort, second.smtpsPort, second.httpPort, second.adminToken],
    [first.smtpPort, first.smtpsPort, first.httpPort, first.adminToken],
  );
  assert.notEqual(second.pid, first.pid);
  // The old handle no longer owns the data dir, so disposing of it keeps the dir.
  await first[Symbol.asyncDispose]();
  assert.ok(await exists(second.dataDir));
});

Deno.test("startRelay() removes the data dir it created when disposed of", async () => {
  let dataDir = "";
  {
    await using relay = await startRelay({ entryPoint: fakeRelay });
    dataDir = relay.dataDir;
    assert.ok(await exists(dataDir));
  }
  assert.ok(!(await exists(dataDir)));
});

Deno.test("startRelay() keeps a data dir the test passed in", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_test_given_" });
  try {
    {
      await using relay = await startRelay({ entryPoint: fakeRelay, dataDir });
      assert.equal(relay.dataDir, dataDir);
    }
    assert.ok(await exists(`${dataDir}/boots`));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startRelay() reports stderr and the exit code when the relay dies early", async () => {
  await assert.rejects(
    startRelay({ entryPoint: fakeRelay, env: { FAKE_RELAY_MODE: "crash_before_ready" } }),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /it exited with code 3 before logging it/);
      assert.match(error.message, /fake relay: configuration is invalid/);
      return true;
    },
  );
});

Deno.test("startRelay() gives up when no ready line comes in time", async () => {
  await assert.rejects(
    startRelay({
      entryPoint: fakeRelay,
      env: { FAKE_RELAY_MODE: "never_ready" },
      readyTimeoutMs: 1000,
    }),
    /Cannot start .*fake_relay\.ts as, awaiting \{"event":"ready"\}, none came within 1000 ms/,
  );
});

Deno.test("startRelay() drains a flood of stdout and keeps lines that are not JSON", async () => {
  await using relay = await startRelay({
    entryPoint: fakeRelay,
    env: { FAKE_RELAY_MODE: "noisy" },
  });
  assert.equal(relay.logs.filter((line) => line.event === "noise").length, 5000);
  assert.ok(relay.logs.some((line) => line.unparsed === "this line is not JSON"));
});

Deno.test("startRelay() waitForLog() finds past lines and times out with context", async () => {
  await using relay = await startRelay({ entryPoint: fakeRelay });
  const ready = await relay.waitForLog((line) => line.event === "ready", 100);
  assert.equal(ready.event, "ready");
  await assert.rejects(
    relay.waitForLog((line) => line.event === "never", 100),
    /Cannot find the awaited log line as none came within 100 ms[^]*"event":"ready"/,
  );
});

Deno.test("startRelay() with the real main.ts, when it exists, becomes ready", {
  ignore: !(await exists(`${repoRoot}/main.ts`)),
}, async () => {
  await using relay = await startRelay();
  assert.ok(relay.logs.some((line) => line.event === "ready"));
});
