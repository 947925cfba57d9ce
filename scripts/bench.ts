/**
 * `deno task bench`: Postern under bench/relay-bench.sh (Postfix's smtp-source → relay →
 * smtp-sink, loopback only), optionally followed by Postfix itself in the same run, so the figures
 * are read side by side. Options: --n 10000 --sessions 20 --sizes 2048,10240 --postfix
 *   --reuse (smtp-source -d) --rcpts 1.
 * Needs Debian's postfix package for smtp-source/smtp-sink (the harness's postfix-setup.sh install).
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    sessions: { type: "string", default: "20" },
    sizes: { type: "string", default: "2048,10240" },
    rcpts: { type: "string", default: "1" },
    postfix: { type: "boolean", default: false },
    reuse: { type: "boolean", default: false },
    harness: { type: "string", default: new URL("../bench", import.meta.url).pathname },
  },
});

const RELAY_PORT = 12525, SINK_PORT = 12526;
const harness = values.harness!;
const repo = new URL("../", import.meta.url).pathname;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "inherit" })
    .output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

async function have(tool: string) {
  return (await run("sh", ["-c", `command -v ${tool}`])).code === 0;
}

if (!(await have("smtp-source"))) {
  console.error("bench: installing Debian's postfix for smtp-source/smtp-sink…");
  await run("bash", [`${harness}/postfix-setup.sh`, "install"]);
}

function benchArgs(label: string, size: string, pid: string) {
  return [
    `${harness}/relay-bench.sh`,
    "-p",
    String(RELAY_PORT),
    "-P",
    String(SINK_PORT),
    "-n",
    values.n!,
    "-s",
    values.sessions!,
    "-l",
    size,
    "-r",
    values.rcpts!,
    "-x",
    pid,
    "-L",
    label,
    ...(values.reuse ? ["-d"] : []),
  ];
}

async function waitForPort(port: number, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`bench: nothing listens on ${port} after ${timeoutMs} ms`);
}

async function benchPostern(size: string): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "postern-bench-" });
  const logFile = await Deno.open(`${dataDir}/relay.log`, { write: true, create: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", `${repo}main.ts`],
    cwd: repo,
    env: {
      POSTERN_DATA_DIR: dataDir,
      POSTERN_LISTEN: "127.0.0.1",
      POSTERN_SMTP_PORT: String(RELAY_PORT),
      POSTERN_SMTPS_PORT: "0",
      POSTERN_HTTP_PORT: "0",
      POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8",
      POSTERN_ROUTES: `*=127.0.0.1:${SINK_PORT}`,
      POSTERN_HOSTNAME: "relay.bench.test",
      POSTERN_ADMIN_TOKEN: "bench-admin-token-not-secret",
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  child.stdout.pipeTo(logFile.writable).catch(() => {});
  try {
    await waitForPort(RELAY_PORT);
    const res = await run("bash", benchArgs(`postern-${size}`, size, String(child.pid)));
    return res.stdout.split("\n").find((l) => l.startsWith("RESULT")) ?? "RESULT failed";
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

async function benchPostfix(size: string): Promise<string> {
  const env = { RELAY_PORT: String(RELAY_PORT), SINK_PORT: String(SINK_PORT) };
  const setup = `${harness}/postfix-setup.sh`;
  await run("bash", [setup, "config"], env);
  await run("bash", [setup, "start"], env);
  try {
    const pidfile = `@${Deno.env.get("TMPDIR") ?? "/tmp"}/relay-bench/postfix/spool/pid/master.pid`;
    const res = await run("bash", benchArgs(`postfix-${size}`, size, pidfile));
    return res.stdout.split("\n").find((l) => l.startsWith("RESULT")) ?? "RESULT failed";
  } finally {
    await run("bash", [setup, "stop"], env);
  }
}

function field(line: string, name: string): string {
  return new RegExp(`\\b${name}=(\\S+)`).exec(line)?.[1] ?? "-";
}

const results: string[] = [];
for (const size of values.sizes!.split(",")) {
  results.push(await benchPostern(size));
  if (values.postfix) results.push(await benchPostfix(size));
}

console.log("\nlabel               accepted/s  delivered/s  peak RSS MB  CPU ms/msg  p99 ms");
for (const line of results) {
  const rss = Number(field(line, "relay_rss_peak_kb"));
  console.log(
    [
      field(line, "label").padEnd(18),
      field(line, "accept_mps").padStart(11),
      field(line, "e2e_mps").padStart(12),
      (Number.isFinite(rss) ? (rss / 1024).toFixed(0) : "-").padStart(12),
      field(line, "relay_cpu_ms_per_msg").padStart(11),
      field(line, "lat_p99_ms").padStart(7),
    ].join(" "),
  );
}
for (const line of results) console.log(line);
