/**
 * End to end: where the relay makes its DKIM signatures (`POSTERN_DKIM_WORKERS`). With `0` it signs
 * on its main thread (the default up to 2 cores), with workers in a pool of threads; either way the
 * mail arrives signed with RSA and Ed25519 and dkimpy verifies both, and the relay stops cleanly.
 * Which it did is read from the relay's threads in /proc (the workers' threads are `worker-N`).
 */
import assert from "node:assert/strict";
import {
  dkimpyVerify,
  message,
  newCredential,
  send,
  session,
  startTenantRelay,
  verifiedDomain,
} from "./support/tenants.ts";

/** Names of the relay's threads (Linux). */
function threadNames(pid: number): string[] {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/comm`).trim();
    } catch {
      return ""; // the thread ended meanwhile
    }
  });
}

for (const workers of ["0", "2"]) {
  Deno.test(`with POSTERN_DKIM_WORKERS=${workers} mail arrives signed with RSA and Ed25519, dkimpy verifies both, the relay stops cleanly`, async () => {
    await using env = await startTenantRelay({ POSTERN_DKIM_WORKERS: workers });
    await verifiedDomain(env.relay, env.dns.zone, "example.test", {
      algorithms: ["rsa", "ed25519"],
    });
    const key = await newCredential(env.relay);
    const client = await session(env.relay, key);
    for (let i = 0; i < 3; i++) {
      const reply = await send(
        client,
        "app@example.test",
        message({ from: "app@example.test", subject: `placement ${i}` }),
      );
      assert.equal(reply.code, 250, reply.raw);
    }
    await client.quit();
    const received = await env.sink.waitFor(3, { timeoutMs: 30_000 });
    for (const m of received) assert.deepEqual(await dkimpyVerify(m.raw, env.dns), [true, true]);

    const signingThreads = threadNames(env.relay.pid).filter((n) => n.startsWith("worker-"));
    if (workers === "0") assert.deepEqual(signingThreads, [], "no signing worker was started");
    else assert.ok(signingThreads.length >= 1, "the signatures were made in a worker");

    const { code } = await env.relay.stop();
    assert.equal(code, 0);
  });
}
