/**
 * edge.ts, the HTTP role for an edge runtime, served by `deno serve` as Deno Deploy would serve
 * it: network and environment only (no file system, no subprocess), its store `Deno.openKv()`
 * with no argument. A worker node on a VM opened on that same store delivers what it accepted.
 */
import assert from "node:assert/strict";
import { freePort, repoRoot, startRelay } from "./support/relay_process.ts";
import { CLUSTER_SECRET_KEY, clusterEnv, startDestinations } from "./support/cluster.ts";
import { waitUntil } from "./support/operations.ts";

const ADMIN = "edge-admin-token-0123456789abcdef";

Deno.test("edge.ts under deno serve, with only --allow-net --allow-env, answers an authenticated API call and queues mail a worker node delivers", async () => {
  // Its own DENO_DIR, so that the store `Deno.openKv()` opens is this test's alone: Deno keeps
  // it at <DENO_DIR>/location_data/<hash of the main module>/kv.sqlite3.
  const denoDir = await Deno.makeTempDir({ prefix: "postern_edge_" });
  const port = await freePort();
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("POSTERN_")),
  );
  const edge = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--allow-net",
      "--allow-env",
      "--unstable-kv",
      "edge.ts",
    ],
    cwd: repoRoot,
    clearEnv: true,
    env: {
      ...env,
      DENO_DIR: denoDir,
      NO_COLOR: "1",
      POSTERN_ADMIN_TOKEN: ADMIN,
      POSTERN_SECRET_KEY: CLUSTER_SECRET_KEY,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = edge.output();
  const dest = await startDestinations(1);
  const base = `http://127.0.0.1:${port}`;
  const call = async (path: string, token: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: await res.json().catch(() => null) };
  };
  let worker: Awaited<ReturnType<typeof startRelay>> | null = null;
  try {
    await waitUntil(
      () => fetch(`${base}/healthz`).then((r) => r.ok, () => false),
      "edge.ts serving",
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    assert.equal((await call("/v1/credentials", "")).status, 401);
    const key = await call("/v1/credentials", ADMIN, { name: "edge-app" });
    assert.equal(key.status, 201, JSON.stringify(key.json));
    const sent = await call("/v1/messages", key.json.password, {
      from: "app@origin.test",
      to: `user@${dest.domains[0]}`,
      subject: "from the edge",
      text: "Accepted at the edge.",
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.json));

    // A VM worker on the same store delivers it.
    const kvPath = await defaultKvPath(denoDir);
    worker = await startRelay({
      env: { ...clusterEnv({ env: { POSTERN_KV: kvPath } }, dest), POSTERN_ROLES: "worker" },
    });
    const [arrived] = await dest.sinks[0]!.waitFor(1, { timeoutMs: 30_000 });
    assert.match(arrived!.text, /Accepted at the edge\./);
    await waitUntil(async () => {
      const status = await call(`/v1/messages/${sent.json.id}`, key.json.password);
      return JSON.stringify(status.json).includes('"delivered"');
    }, "the edge showing the message delivered");
  } finally {
    await worker?.[Symbol.asyncDispose]();
    edge.kill("SIGKILL");
    const { stderr } = await output;
    await dest.close();
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
    const text = new TextDecoder().decode(stderr);
    assert.doesNotMatch(text, /PermissionDenied|NotCapable|Requires .* access/, text);
  }
});

/** The one store Deno opened for `Deno.openKv()` under `denoDir`. */
async function defaultKvPath(denoDir: string): Promise<string> {
  const found: string[] = [];
  for await (const dir of Deno.readDir(`${denoDir}/location_data`)) {
    const path = `${denoDir}/location_data/${dir.name}/kv.sqlite3`;
    if (await Deno.stat(path).then(() => true, () => false)) found.push(path);
  }
  assert.equal(found.length, 1, `stores under ${denoDir}: ${found}`);
  return found[0]!;
}
