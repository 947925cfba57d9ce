/**
 * The bench's own load client (bench/submit_load.ts), against a real relay: what `deno task bench`
 * reports for STARTTLS + AUTH submission is only as true as this client. It must authenticate with a
 * credential made through the API, have every message delivered, and record probe times in the
 * format bench/relay-bench.sh matches to the sink's arrivals.
 */
import assert from "node:assert/strict";
import { createTestCa } from "./support/test_ca.ts";
import { newCredential, startTenantRelay } from "./support/tenants.ts";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";

const client = new URL("../bench/submit_load.ts", import.meta.url).pathname;

async function load(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", client, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("the bench's submission client delivers every message over STARTTLS + AUTH and records probe times for the harness", async () => {
  const ca = await createTestCa();
  const dir = await Deno.makeTempDir({ prefix: "postern-bench-load-" });
  const certificate = await ca.issue(["relay.test"]);
  await Deno.writeTextFile(`${dir}/cert.pem`, certificate.cert);
  await Deno.writeTextFile(`${dir}/key.pem`, certificate.key);
  await using env = await startTenantRelay({
    POSTERN_TLS_CERT: `${dir}/cert.pem`,
    POSTERN_TLS_KEY: `${dir}/key.pem`,
  });
  try {
    const credential = await newCredential(env.relay);
    const probes = `${dir}/probes.txt`;
    const started = `${dir}/started`;
    const res = await load([
      ...["--port", String(env.relay.smtpPort), "--n", "6", "--sessions", "3", "--size", "3000"],
      ...["--tls", "--ca", ca.file, "--servername", "relay.test"],
      ...["--user", credential.username, "--pass", credential.password],
      ...["--runid", "run1", "--probes", probes, "--probe-every", "2", "--started", started],
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim().split("\n").at(-1), "6", res.stderr);

    const messages = await env.sink.waitFor(6, { timeoutMs: 30_000 });
    const tagged = messages.map((m) => /^X-Bench-Probe: (\S+)/m.exec(m.headers)?.[1]).filter(
      Boolean,
    );
    assert.deepEqual(tagged.sort(), ["run1-2", "run1-4", "run1-6"]);
    assert.ok(messages.every((m) => m.raw.length >= 3000), "each message carries --size bytes");

    const lines = (await Deno.readTextFile(probes)).trim().split("\n").map((l) => l.split(" "));
    assert.deepEqual(lines.map(([id]) => id).sort(), ["2", "4", "6"]);
    const startedAt = Number(await Deno.readTextFile(started));
    for (const [, dot, ack] of lines) {
      assert.ok(Number(dot) >= startedAt && Number(ack) >= Number(dot), `${dot} ${ack}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(ca.file.slice(0, ca.file.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("a paced bench run sends its warm-up messages like the rest but samples latency only after the warm-up, at most its first half", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern-bench-warmup-" });
  const sink = await startSink();
  await using relay = await startRelay({
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    },
  });
  try {
    const probes = `${dir}/probes.txt`;
    // 20/s: messages 1-4 are due in the first 0.2 s (the warm-up), 5-8 after it.
    const res = await load([
      ...["--port", String(relay.smtpPort), "--n", "8", "--sessions", "2", "--size", "500"],
      ...["--rate", "20", "--warmup", "0.2", "--runid", "run2", "--probes", probes],
      ...["--probe-every", "1"],
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim().split("\n").at(-1), "8", res.stderr);
    const messages = await sink.waitFor(8, { timeoutMs: 30_000 });
    const tagged = messages.map((m) => /^X-Bench-Probe: (\S+)/m.exec(m.headers)?.[1]).filter(
      Boolean,
    );
    assert.deepEqual(tagged.sort(), ["run2-5", "run2-6", "run2-7", "run2-8"]);
    const lines = (await Deno.readTextFile(probes)).trim().split("\n").map((l) => l.split(" "));
    assert.deepEqual(lines.map(([id]) => id).sort(), ["5", "6", "7", "8"]);

    // A warm-up longer than the run takes its first half only: a short run still has probes.
    const short = await load([
      ...["--port", String(relay.smtpPort), "--n", "5", "--sessions", "2", "--size", "500"],
      ...["--rate", "20", "--warmup", "10", "--runid", "run3", "--probes", `${dir}/short.txt`],
      ...["--probe-every", "1"],
    ]);
    assert.equal(short.code, 0, short.stderr);
    const shortLines = (await Deno.readTextFile(`${dir}/short.txt`)).trim().split("\n");
    assert.deepEqual(shortLines.map((l) => l.split(" ")[0]).sort(), ["4", "5"]);
  } finally {
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bench's load client refuses to send anywhere but loopback", async () => {
  const res = await load(["--host", "192.0.2.1", "--n", "1"]);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /loopback only/);
});
