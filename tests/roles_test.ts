/**
 * Roles that run apart (POSTERN_ROLES): an http-only node with no data dir, no write access but
 * to the shared store file, no subprocess and no SMTP listener accepts mail that a worker-only
 * node delivers; a worker-only node listens for nothing but /healthz and /metrics; a role that
 * cannot get what it needs stops start-up with one line.
 */
import assert from "node:assert/strict";
import { repoRoot, runCommand, startRelay } from "./support/relay_process.ts";
import {
  clusterEnv,
  fileStore,
  SHARED_STORES,
  type SharedStore,
  startDestinations,
  storeWriteFlag,
} from "./support/cluster.ts";
import { waitUntil } from "./support/operations.ts";

/** Whether anything accepts a TCP connection on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** The permissions an http-only node runs with: writes to a local store's files only. */
function httpOnlyPermissions(store: SharedStore): string[] {
  return ["--allow-net", "--allow-env", "--allow-read", storeWriteFlag(store), "--deny-run"];
}

for (const shared of SHARED_STORES) {
  Deno.test(`on ${shared.name}, an http-only node without a data dir, write access or subprocesses accepts mail through its API that a worker-only node delivers`, async () => {
    const store = await shared.open();
    const dest = await startDestinations(1);
    const scratch = await Deno.makeTempDir({ prefix: "postern_roles_" });
    const noDataDir = `${scratch}/never-created`;
    const env = clusterEnv(store, dest);
    const worker = await startRelay({ env: { ...env, POSTERN_ROLES: "worker" } });
    const http = await startRelay({
      env: { ...env, POSTERN_ROLES: "http" },
      dataDir: noDataDir,
      permissions: httpOnlyPermissions(store),
    });
    try {
      // Neither opened an SMTP listener; the worker's HTTP port serves health and metrics only.
      for (const port of [worker.smtpPort, worker.smtpsPort, http.smtpPort, http.smtpsPort]) {
        assert.equal(await listening(port), false, `port ${port} is open`);
      }
      assert.equal((await worker.api("/healthz")).status, 200);
      assert.equal((await worker.api("/metrics")).status, 200);
      assert.equal((await worker.api("/v1/credentials")).status, 404);

      const key = await http.api("/v1/credentials", { body: { name: "app" } });
      assert.equal(key.status, 201, JSON.stringify(key.json));
      const sent = await http.api("/v1/messages", {
        token: key.json.password,
        body: {
          from: "app@origin.test",
          to: `user@${dest.domains[0]}`,
          subject: "through the edge",
          text: "Hello from the http-only node.",
        },
      });
      assert.equal(sent.status, 202, JSON.stringify(sent.json));
      const [arrived] = await dest.sinks[0]!.waitFor(1, { timeoutMs: 30_000 });
      assert.match(arrived!.text, /Hello from the http-only node\./);
      const attempt = (l: Record<string, unknown>) =>
        l.event === "delivery.attempt" && l.msg === sent.json.id;
      await worker.waitForLog(attempt);
      assert.equal(http.logs.filter(attempt).length, 0, "the http node delivers nothing");
      // The message's status, read through the http node, says so too.
      await waitUntil(async () => {
        const status = await http.api(`/v1/messages/${sent.json.id}`);
        return JSON.stringify(status.json).includes('"delivered"');
      }, "the message shown delivered by the http node");
      assert.equal(await exists(noDataDir), false, "the http-only node made no data dir");
    } finally {
      await http[Symbol.asyncDispose]();
      await worker[Symbol.asyncDispose]();
      await dest.close();
      await store.close();
      await Deno.remove(scratch, { recursive: true }).catch(() => {});
    }
  });
}

Deno.test("a role that cannot get its local resource stops start-up with one line naming the setting", async () => {
  const store = await fileStore();
  const scratch = await Deno.makeTempDir({ prefix: "postern_roles_" });
  try {
    const run = (env: Record<string, string>, permissions: string[]) =>
      runCommand(Deno.execPath(), ["run", ...permissions, "--unstable-kv", `${repoRoot}/main.ts`], {
        cwd: repoRoot,
        env: {
          POSTERN_LISTEN: "127.0.0.1",
          POSTERN_SMTP_PORT: "0",
          POSTERN_SMTPS_PORT: "0",
          POSTERN_HTTP_PORT: "0",
          POSTERN_ADMIN_TOKEN: "roles-admin-token-0123456789",
          POSTERN_DATA_DIR: `${scratch}/data`,
          ...env,
        },
        timeoutMs: 60_000,
      });
    const cases = [
      // A worker keeps its node id in the data dir, which this node may not write.
      {
        env: { ...store.env, POSTERN_ROLES: "worker" },
        permissions: httpOnlyPermissions(store),
        setting: "POSTERN_DATA_DIR",
      },
      // An http-only node keeps no data dir, so it must be told where the store is.
      { env: { POSTERN_ROLES: "http" }, permissions: ["--allow-all"], setting: "POSTERN_KV" },
      {
        env: { POSTERN_ROLES: "http,mail" },
        permissions: ["--allow-all"],
        setting: "POSTERN_ROLES",
      },
      // Nor a generated secret key: the one every node shares must be given.
      {
        env: { ...store.env, POSTERN_ROLES: "http" },
        permissions: httpOnlyPermissions(store),
        setting: "POSTERN_SECRET_KEY",
      },
      // A node whose key is not the one the store's secrets are sealed under.
      {
        env: { ...store.env, POSTERN_SECRET_KEY: "not the key the other nodes use, 32+ chars" },
        permissions: ["--allow-all"],
        setting: "POSTERN_SECRET_KEY",
      },
    ];
    // Another node recorded its key in the store.
    const kv = await Deno.openKv(store.env.POSTERN_KV!);
    await kv.set(["meta", "secret_key_id"], { id: "otherkey" });
    kv.close();
    for (const c of cases) {
      const result = await run(c.env, c.permissions);
      const lines = result.stderr.trim().split("\n");
      assert.equal(result.code, 2, result.stderr);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, new RegExp(`^postern: ${c.setting}: `), result.stderr);
    }
  } finally {
    await store.close();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
});
