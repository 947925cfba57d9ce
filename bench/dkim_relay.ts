/**
 * DKIM signing end to end: the relay (as tests start it: a subprocess on loopback, the test DNS
 * server, every domain routed to a sink) takes N messages from Postfix's smtp-source over S
 * trusted-network sessions, unsigned, then signed with RSA-2048, then with Ed25519, and this
 * reports the relay's CPU ms per delivered message (whole process, and its main thread alone)
 * and msg/s for each. CPU per message is what a noisy machine does not move much; msg/s is shown
 * but read it as a ratio at best.
 *
 * `deno run --allow-all --unstable-kv bench/dkim_relay.ts [N=2000] [S=20] [SIZE=2048]`
 *
 * Needs smtp-source (Debian's postfix package) and Linux /proc.
 *
 * @module
 */
import { startTenantRelay, verifiedDomain } from "../tests/support/tenants.ts";

const n = Number(Deno.args[0] ?? 2000);
const sessions = Number(Deno.args[1] ?? 20);
const size = Number(Deno.args[2] ?? 2048);

/** CPU ms of the process `pid` (all threads) and of its main thread, from the scheduler. */
function cpuMs(pid: number): { total: number; main: number } {
  let total = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(
        Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`).split(" ")[0],
      );
    } catch {
      // A thread that ended meanwhile.
    }
  }
  const main = Number(Deno.readTextFileSync(`/proc/${pid}/task/${pid}/schedstat`).split(" ")[0]);
  return { total: total / 1e6, main: main / 1e6 };
}

await using env = await startTenantRelay({ POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8" });
await verifiedDomain(env.relay, env.dns.zone, "rsa.test", { algorithms: ["rsa"] });
await verifiedDomain(env.relay, env.dns.zone, "ed.test", { algorithms: ["ed25519"] });

async function load(from: string, count: number, label: string) {
  const before = env.sink.messages.length;
  const cpu = cpuMs(env.relay.pid);
  const start = performance.now();
  const out = await new Deno.Command("smtp-source", {
    args: [
      "-c",
      "-m",
      String(count),
      "-s",
      String(sessions),
      "-l",
      String(size),
      "-f",
      from,
      "-t",
      "user@dest.test",
      `127.0.0.1:${env.relay.smtpPort}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`smtp-source: ${new TextDecoder().decode(out.stderr)}`);
  await env.sink.waitFor(before + count, { timeoutMs: 600_000 });
  const wall = performance.now() - start;
  const used = cpuMs(env.relay.pid);
  if (!label) return;
  const signed = env.sink.messages.slice(before).filter((m) => m.headers.includes("DKIM-Signature"))
    .length;
  console.log(
    `${label.padEnd(9)} relay CPU ms/msg: process ${
      ((used.total - cpu.total) / count).toFixed(3)
    }, ` +
      `main thread ${((used.main - cpu.main) / count).toFixed(3)}; ` +
      `${(count / wall * 1000).toFixed(0)} msg/s delivered; ${signed}/${count} signed`,
  );
}

console.log(`${n} messages × ${size} B over ${sessions} sessions, each mode after a warm-up`);
for (
  const [label, from] of [
    ["unsigned", "app@plain.test"],
    ["rsa", "app@rsa.test"],
    ["ed25519", "app@ed.test"],
  ]
) {
  await load(from!, Math.min(200, n), ""); // warm-up: JIT, workers started, keys parsed
  await load(from!, n, label!);
}
