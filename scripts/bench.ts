/**
 * `deno task bench`: Postern, and with --postfix Postfix, under bench/relay-bench.sh (load →
 * relay → smtp-sink, loopback only), run ALTERNATELY in one session — Postern, Postfix, Postern,
 * Postfix… — so both see the same machine, and reported as the median of --pairs pairs in one
 * table. bench/README.md explains every column.
 *
 * Modes (--modes): `plain` is the trusted-network path (smtp-source, no TLS, no AUTH); `submit` is
 * STARTTLS + AUTH PLAIN submission with a credential the bench creates (bench/submit_load.ts; for
 * Postfix a second smtpd with Cyrus SASL). Signing (--sign): `none`, `rsa` (RSA-2048) and
 * `ed25519`; Postern signs for a domain the bench verifies through the admin API against a
 * loopback DNS responder, Postfix through Debian's opendkim milter (RSA only: the like-for-like
 * reference; Ed25519 rows compare with Postern unsigned). After each unsigned cell's saturated
 * pairs, a half-saturated pair offers half of each relay's own saturated delivered rate (the
 * p99 accept → delivered ≤ 50 ms check; --no-half skips it). Its first --half-warmup seconds
 * (default 1) are sent and counted but not sampled for latency: both relays are started for the
 * run, and that is their start-up, not the steady state at the offered rate.
 *
 *   deno task bench [--postfix] [--pairs 3] [--n 10000] [--n-large 500] [--sessions 20]
 *     [--sizes 2048,10240,1048576] [--modes plain,submit] [--sign none,rsa,ed25519] [--no-half]
 *     [--half-warmup 1] [--warmup 1000] [--warmup-large 20] [--floor deno,node,deno10,node10]
 *
 * --floor adds, in each pair of a plaintext unsigned cell, runs of bench/floor_experiment.ts: the
 * least a relay on this stack can do (commit before the `250`, forward, commit the outcome), on
 * Deno's TCP or node:net, with 2 mutations per message or (…10) the 10 issue 18 allows
 * (bench/README.md, "The floor of this stack on this machine").
 *
 * Before each saturated run, each relay first takes --warmup messages (--warmup-large above 100
 * KB) through the same load, delivered in full and not counted: a relay that has run for a while
 * (code compiled, processes forked, caches filled) is what users run, and both relays are started
 * for each run. `--warmup 0` measures from a cold start (bench/README.md, "Warm-up").
 *
 * Installs what it needs through apt-get when missing (postfix for smtp-source/smtp-sink and the
 * reference, opendkim, sasl2-bin). Every run is bounded in count (--n) and time (relay-bench -T).
 */
import { parseArgs } from "node:util";
import { startDnsServer } from "../tests/support/dns_server.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    "n-large": { type: "string", default: "500" },
    sessions: { type: "string", default: "20" },
    sizes: { type: "string", default: "2048,10240,1048576" },
    modes: { type: "string", default: "plain,submit" },
    sign: { type: "string", default: "none,rsa,ed25519" },
    rcpts: { type: "string", default: "1" },
    pairs: { type: "string", default: "3" },
    postfix: { type: "boolean", default: false },
    "no-half": { type: "boolean", default: false },
    "half-warmup": { type: "string", default: "1" },
    warmup: { type: "string", default: "1000" },
    "warmup-large": { type: "string", default: "20" },
    timeout: { type: "string", default: "600" },
    harness: { type: "string", default: new URL("../bench", import.meta.url).pathname },
    floor: { type: "string", default: "" },
  },
});

type Mode = "plain" | "submit";
type Sign = "none" | "rsa" | "ed25519";

const RELAY_PORT = 12525, SINK_PORT = 12526, HTTP_PORT = 12580;
const PF_SUBMIT_PORT = 12587, MILTER_PORT = 12891;
const HOSTNAME = "relay.bench.test";
const ADMIN_TOKEN = "bench-admin-token-not-secret-0123456789";
/** The Postfix reference's SASL login; Postern's credential is made per run through the API. */
const PF_USER = "bench", PF_PASS = "bench-password-not-secret";
const harness = values.harness!;
const repo = new URL("../", import.meta.url).pathname;
const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
const pairs = Math.max(1, Number(values.pairs));
const sessions = values.sessions!;
const modes = values.modes!.split(",") as Mode[];
const signs = values.sign!.split(",") as Sign[];
const FLOORS = ["deno", "node", "deno10", "node10"] as const;
type Floor = typeof FLOORS[number];
const floors = (values.floor ? values.floor.split(",") : []) as Floor[];
for (const f of floors) {
  if (!FLOORS.includes(f)) throw new Error(`bench: --floor takes ${FLOORS.join(", ")}; not ${f}`);
}

/** What an interrupted bench must stop: the relay under test, its milter, the DNS responder. */
const cleanups = new Set<() => Promise<unknown>>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    Deno.exit(130);
  });
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "inherit" })
    .output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

async function have(tool: string) {
  return (await run("sh", ["-c", `command -v ${tool}`])).code === 0;
}

if (!(await have("smtp-source")) || (modes.includes("submit") && !(await have("saslpasswd2")))) {
  console.error("bench: installing Debian's postfix (smtp-source/smtp-sink) and sasl2-bin…");
  await run("bash", [`${harness}/postfix-setup.sh`, "install"]);
}
if (values.postfix && signs.includes("rsa") && !(await have("opendkim"))) {
  console.error("bench: installing Debian's opendkim…");
  await run("bash", [`${harness}/opendkim-setup.sh`, "install"]);
}

for (const port of [RELAY_PORT, SINK_PORT, HTTP_PORT, PF_SUBMIT_PORT, MILTER_PORT]) {
  const busy = await Deno.connect({ hostname: "127.0.0.1", port }).then((c) => (c.close(), true))
    .catch(() => false);
  if (busy) throw new Error(`bench: 127.0.0.1:${port} is taken; is another bench running?`);
}

/**
 * One certificate for both relays' STARTTLS, issued by a throwaway CA the load client trusts
 * (rustls refuses a self-signed CA certificate as the server's own). ECDSA P-256, what certbot
 * issues by default and Postern's own generated certificate uses: the STARTTLS handshake signs
 * with it, and an RSA-2048 signature costs Deno's TLS several times as much.
 */
const work = await Deno.makeTempDir({ prefix: "postern-bench-" });
const tlsCert = `${work}/cert.pem`, tlsKey = `${work}/key.pem`, caCert = `${work}/ca.pem`;
await Deno.writeTextFile(
  `${work}/leaf.ext`,
  `subjectAltName=DNS:${HOSTNAME}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
);
const caKey = `${work}/ca-key.pem`, csr = `${work}/leaf.csr`;
for (
  const args of [
    `req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-CA -keyout ${caKey} -out ${caCert}`,
    `req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=${HOSTNAME} -keyout ${tlsKey} -out ${csr}`,
    `x509 -req -in ${csr} -CA ${caCert} -CAkey ${caKey} -CAcreateserial -days 2 -out ${tlsCert} ` +
    `-extfile ${work}/leaf.ext`,
  ]
) {
  const made = await new Deno.Command("openssl", {
    args: args.split(" "),
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (made.code !== 0) {
    throw new Error(`bench: openssl ${args}: ${new TextDecoder().decode(made.stderr)}`);
  }
}

/** Loopback DNS for domain verification and Postern's DKIM records (no real name is looked up). */
const dns = await startDnsServer({ txt: { [HOSTNAME]: ["v=spf1 ip4:127.0.0.1 -all"] } });
cleanups.add(() => dns.close());

function nFor(size: number): number {
  return size > 100 * 1024 ? Number(values["n-large"]) : Number(values.n);
}

function warmupFor(size: number): number {
  return Math.max(0, Number(size > 100 * 1024 ? values["warmup-large"] : values.warmup));
}

/** The load command relay-bench.sh runs for submission and paced runs (bench/submit_load.ts). */
function loadCommand(login: { user: string; pass: string } | null, rate: number): string {
  const args = [
    Deno.execPath(),
    "run",
    "--allow-all",
    `${harness}/submit_load.ts`,
    "--host",
    "$BENCH_HOST",
    "--port",
    "$BENCH_PORT",
    "--n",
    "$BENCH_N",
    "--sessions",
    "$BENCH_SESSIONS",
    "--size",
    "$BENCH_SIZE",
    "--rcpts",
    "$BENCH_RCPTS",
    "--runid",
    "$BENCH_RUNID",
    "--probes",
    "$BENCH_PROBES",
    "--started",
    "$BENCH_STARTED",
    "--ended",
    "$BENCH_ENDED",
    "--time-limit",
    values.timeout!,
    ...(rate > 0 ? ["--rate", String(rate), "--warmup", values["half-warmup"]!] : []),
    ...(login
      ? [
        "--tls",
        "--ca",
        caCert,
        "--servername",
        HOSTNAME,
        "--user",
        login.user,
        "--pass",
        login.pass,
      ]
      : []),
  ];
  return args.map((a) => (a.startsWith("$") ? `"${a}"` : `'${a}'`)).join(" ");
}

interface Run {
  mode: Mode;
  sign: Sign;
  size: number;
  /** Offered messages per second; 0 = as fast as the relay takes them. */
  rate: number;
}

/**
 * One measured relay-bench.sh run; a saturated one comes after a warm-up run of the same load whose
 * result is dropped (a paced run has its own warm-up seconds: --half-warmup).
 */
async function relayBench(label: string, run_: Run, port: number, pids: string, load: string) {
  const warmup = run_.rate > 0 ? 0 : warmupFor(run_.size);
  if (warmup > 0) {
    const line = await relayBenchOnce(`${label}-warmup`, run_, warmup, port, pids, load);
    if (field(line, "status") !== "ok") return line.replace(/\bstatus=\S+/, "status=warmup-failed");
  }
  // At half the rate, half the messages take about as long as a saturated run.
  const n = run_.rate > 0 ? Math.max(10, Math.round(nFor(run_.size) / 2)) : nFor(run_.size);
  return await relayBenchOnce(label, run_, n, port, pids, load);
}

async function relayBenchOnce(
  label: string,
  run_: Run,
  n: number,
  port: number,
  pids: string,
  load: string,
) {
  const args = [
    `${harness}/relay-bench.sh`,
    ...["-p", String(port), "-P", String(SINK_PORT), "-n", String(n), "-s", sessions],
    ...[
      "-l",
      String(run_.size),
      "-r",
      values.rcpts!,
      "-x",
      pids,
      "-L",
      label,
      "-T",
      values.timeout!,
    ],
    ...(load ? ["-C", load] : []),
  ];
  const res = await run("bash", args);
  return res.stdout.split("\n").find((l) => l.startsWith("RESULT")) ??
    `RESULT label=${label} status=failed`;
}

async function waitForPort(port: number, timeoutMs = 60_000) {
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

/** Postern's admin API, as an operator calls it. */
async function api(path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`bench: POST ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Adds bench.test with a DKIM key, publishes its records in the loopback zone, verifies it. */
async function verifyDomain(algorithm: "rsa" | "ed25519") {
  const created = await api("/v1/domains", {
    name: "bench.test",
    dkim: { algorithms: [algorithm] },
  });
  dns.zone.txt = { [HOSTNAME]: ["v=spf1 ip4:127.0.0.1 -all"] };
  for (const r of created.records as { name: string; value: string }[]) {
    dns.zone.txt[r.name] = [r.value];
  }
  const verified = await api(`/v1/domains/${created.id}/verify`);
  if (verified.verified !== true) {
    throw new Error(`bench: bench.test not verified: ${JSON.stringify(verified)}`);
  }
}

/**
 * BENCH_RELAY_INSPECT=PORT starts each Postern run with the inspector on that port, for
 * `scripts/cpu_profile.ts record PORT …` during the run (the profile of a bench mode as it runs).
 */
function inspectFlag(): string[] {
  const port = Deno.env.get("BENCH_RELAY_INSPECT");
  return port ? [`--inspect=127.0.0.1:${port}`] : [];
}

/** A relay the bench started: stopped (SIGTERM) by `stop`, or by an interrupted bench. */
function supervise(child: Deno.ChildProcess) {
  let exited = false;
  const status = child.status.then((st) => (exited = true, st));
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
    cleanups.delete(stop);
  };
  cleanups.add(stop);
  return { status, stop };
}

async function benchPostern(label: string, run_: Run): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "postern-bench-data-" });
  const logPath = `${dataDir}/relay.log`;
  const [outLog, errLog] = [
    await Deno.open(logPath, { append: true, create: true }),
    await Deno.open(logPath, { append: true }),
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", ...inspectFlag(), `${repo}main.ts`],
    cwd: repo,
    env: {
      POSTERN_DATA_DIR: dataDir,
      POSTERN_LISTEN: "127.0.0.1",
      POSTERN_SMTP_PORT: String(RELAY_PORT),
      POSTERN_SMTPS_PORT: "0",
      POSTERN_HTTP_PORT: String(HTTP_PORT),
      // Submission is judged as users run it: AUTH required, as nobody is trusted.
      POSTERN_TRUSTED_NETWORKS: run_.mode === "plain" ? "127.0.0.0/8" : "",
      POSTERN_ROUTES: `*=127.0.0.1:${SINK_PORT}`,
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_HOSTNAME: HOSTNAME,
      POSTERN_TLS_CERT: tlsCert,
      POSTERN_TLS_KEY: tlsKey,
      POSTERN_ADMIN_TOKEN: ADMIN_TOKEN,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { status, stop } = supervise(child);
  // Its log and banner go to the data dir's relay.log, kept apart from the table.
  const logged = Promise.all([
    child.stdout.pipeTo(outLog.writable),
    child.stderr.pipeTo(errLog.writable),
  ]).catch(() => {});
  try {
    // A relay that exits at start-up (a bad setting in the environment) says why.
    const started = Promise.all([waitForPort(RELAY_PORT), waitForPort(HTTP_PORT)]);
    const died = status.then(async (st) => {
      await logged;
      const log = await Deno.readTextFile(logPath).catch(() => "");
      throw new Error(`bench: the relay exited (${st.code}) at start-up:\n${log.slice(-2000)}`);
    });
    await Promise.race([started, died]);
    died.catch(() => {});
    if (run_.sign !== "none") await verifyDomain(run_.sign);
    let login = null;
    if (run_.mode === "submit") {
      const credential = await api("/v1/credentials", { name: "bench" });
      login = { user: credential.username as string, pass: credential.password as string };
    }
    const load = run_.mode === "submit" || run_.rate > 0 ? loadCommand(login, run_.rate) : "";
    return await relayBench(label, run_, RELAY_PORT, String(child.pid), load);
  } finally {
    await stop();
    await logged;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** One run of the floor relay (bench/floor_experiment.ts) in `variant`, plaintext only. */
async function benchFloor(label: string, run_: Run, variant: Floor): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "postern-bench-floor-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      `${harness}/floor_experiment.ts`,
      String(RELAY_PORT),
      String(SINK_PORT),
      dataDir,
    ],
    env: {
      FLOOR_NET: variant.startsWith("node") ? "node" : "deno",
      FLOOR_EXTRA_KEYS: variant.endsWith("10") ? "4" : "0",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const { status, stop } = supervise(child);
  try {
    await Promise.race([
      waitForPort(RELAY_PORT),
      status.then((st) => {
        throw new Error(`bench: the floor relay exited (${st.code}) at start-up`);
      }),
    ]);
    return await relayBench(label, run_, RELAY_PORT, String(child.pid), "");
  } finally {
    await stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

async function benchPostfix(label: string, run_: Run): Promise<string> {
  const env: Record<string, string> = {
    RELAY_PORT: String(RELAY_PORT),
    SINK_PORT: String(SINK_PORT),
    ...(run_.mode === "submit"
      ? {
        SUBMIT_PORT: String(PF_SUBMIT_PORT),
        TLS_CERT: tlsCert,
        TLS_KEY: tlsKey,
        SASL_USER: PF_USER,
        SASL_PASS: PF_PASS,
      }
      : {}),
    ...(run_.sign === "rsa" ? { MILTER_PORT: String(MILTER_PORT), ALG: "rsa" } : {}),
  };
  const setup = `${harness}/postfix-setup.sh`, dkim = `${harness}/opendkim-setup.sh`;
  const pids = [`@${tmp}/relay-bench/postfix/spool/pid/master.pid`];
  const stop = async () => {
    await run("bash", [setup, "stop"], env);
    if (run_.sign === "rsa") await run("bash", [dkim, "stop"], env);
  };
  cleanups.add(stop);
  if (run_.sign === "rsa") {
    await run("bash", [dkim, "config"], env);
    await run("bash", [dkim, "start"], env);
    pids.push(`@${tmp}/relay-bench/opendkim/opendkim.pid`);
  }
  await run("bash", [setup, "config"], env);
  await run("bash", [setup, "flush"], env);
  await run("bash", [setup, "start"], env);
  try {
    const login = run_.mode === "submit" ? { user: `${PF_USER}@bench.test`, pass: PF_PASS } : null;
    const load = run_.mode === "submit" || run_.rate > 0 ? loadCommand(login, run_.rate) : "";
    const port = run_.mode === "submit" ? PF_SUBMIT_PORT : RELAY_PORT;
    return await relayBench(label, run_, port, pids.join(","), load);
  } finally {
    await stop();
    cleanups.delete(stop);
  }
}

function field(line: string, name: string): string {
  return new RegExp(`\\b${name}=(\\S+)`).exec(line)?.[1] ?? "-";
}

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

interface Row {
  label: string;
  lines: string[];
  /** Per pair, this row's delivered/s over the reference's; empty without one. */
  ratios: number[];
  /** The ratio's reference, e.g. "Postfix" or "unsigned". */
  versus: string;
}

const rows: Row[] = [];
const sizeName = (size: number) => size >= 1 << 20 ? `${size >> 20}MB` : `${size >> 10}KB`;
const e2e = (line: string) => Number(field(line, "e2e_mps"));

/** `pairs` alternating runs of one cell; the Postfix row only where a like-for-like one exists. */
async function cell(run_: Run, name: string, unsigned?: Row) {
  const withPostfix = values.postfix && run_.sign !== "ed25519";
  const postern: Row = { label: `postern ${name}`, lines: [], ratios: [], versus: "" };
  const postfix: Row = { label: `postfix ${name}`, lines: [], ratios: [], versus: "" };
  const withFloors = run_.mode === "plain" && run_.sign === "none" ? floors : [];
  const floorRows = withFloors.map((variant): Row => ({
    label: `floor-${variant} ${name}`,
    lines: [],
    ratios: [],
    versus: "",
  }));
  const slug = name.replaceAll(" ", "-");
  for (let i = 0; i < pairs; i++) {
    const p = await benchPostern(`postern-${slug}`, run_);
    postern.lines.push(p);
    console.error(p);
    for (const [k, variant] of withFloors.entries()) {
      const line = await benchFloor(`floor-${variant}-${slug}`, run_, variant);
      floorRows[k]!.lines.push(line);
      console.error(line);
    }
    if (!withPostfix) continue;
    const f = await benchPostfix(`postfix-${slug}`, run_);
    postfix.lines.push(f);
    console.error(f);
    postern.ratios.push(e2e(p) / e2e(f));
    for (const row of floorRows) row.ratios.push(e2e(row.lines[i]!) / e2e(f));
  }
  if (withPostfix) {
    postern.versus = "Postfix";
    for (const row of floorRows) row.versus = "Postfix";
  } else if (unsigned) {
    postern.versus = "unsigned";
    postern.ratios = postern.lines.map((l, i) => e2e(l) / e2e(unsigned.lines[i] ?? ""));
  }
  rows.push(postern, ...floorRows);
  if (withPostfix) rows.push(postfix);
  return { postern, postfix: withPostfix ? postfix : null };
}

try {
  for (const mode of modes) {
    for (const size of values.sizes!.split(",").map(Number)) {
      let unsigned: Row | undefined;
      for (const sign of signs) {
        const name = `${mode} ${sign === "none" ? "unsigned" : sign} ${sizeName(size)}`;
        const done = await cell({ mode, sign, size, rate: 0 }, name, unsigned);
        if (sign !== "none") continue;
        unsigned = done.postern;
        if (values["no-half"]) continue;
        // Half the saturated delivered rate, each relay its own, alternating as well.
        const half = (row: Row) => Math.max(0.1, Math.round(median(row.lines.map(e2e)) * 5) / 10);
        const halfRow: Row = { label: `postern ${name} half`, lines: [], ratios: [], versus: "" };
        const pfRow: Row = { label: `postfix ${name} half`, lines: [], ratios: [], versus: "" };
        const rate = half(done.postern);
        const pfRate = done.postfix ? half(done.postfix) : 0;
        halfRow.label += `@${rate}/s`;
        pfRow.label += `@${pfRate}/s`;
        const tag = `${mode}-${sizeName(size)}-half`;
        halfRow.lines.push(await benchPostern(`postern-${tag}`, { mode, sign, size, rate }));
        console.error(halfRow.lines[0]);
        rows.push(halfRow);
        if (done.postfix) {
          pfRow.lines.push(
            await benchPostfix(`postfix-${tag}`, { mode, sign, size, rate: pfRate }),
          );
          console.error(pfRow.lines[0]);
          rows.push(pfRow);
        }
      }
    }
  }
} finally {
  await dns.close();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}

const columns: [string, number, (lines: string[]) => string][] = [];
const med = (name: string, digits = 1, scale = 1) => (lines: string[]) => {
  const m = median(lines.map((l) => Number(field(l, name)) * scale));
  return Number.isFinite(m) ? m.toFixed(digits) : "-";
};
/** Messages per second: whole above 100, else with a decimal (1 MB runs are slow). */
const perSecond = (name: string) => (lines: string[]) => {
  const m = median(lines.map((l) => Number(field(l, name))));
  return Number.isFinite(m) ? m.toFixed(m >= 100 ? 0 : 1) : "-";
};
columns.push(
  ["accepted/s", 10, perSecond("accept_mps")],
  ["delivered/s", 11, perSecond("e2e_mps")],
  ["CPU ms/msg", 10, med("relay_cpu_ms_per_msg", 2)],
  ["peak RSS MB", 11, med("relay_rss_peak_kb", 0, 1 / 1024)],
  ["KB written/msg", 14, med("relay_write_kb_per_msg", 1)],
  ["ack p50", 7, med("ack_p50_ms", 1)],
  ["ack p99", 7, med("ack_p99_ms", 1)],
  ["a→d p50", 7, med("lat_p50_ms", 1)],
  ["a→d p99", 7, med("lat_p99_ms", 1)],
  ["other CPU s", 11, med("other_cpu_s", 1)],
  [
    "DKIM",
    4,
    (lines) =>
      lines.every((l) => field(l, "dkim_signed") === "yes")
        ? "yes"
        : lines.some((l) => field(l, "dkim_signed") === "yes")
        ? "some"
        : "no",
  ],
  ["status", 6, (lines) => lines.every((l) => field(l, "status") === "ok") ? "ok" : "FAIL"],
);

const width = Math.max(...rows.map((r) => r.label.length), 5);
console.log(
  `\n${
    pairs === 1 ? "one run" : `median of ${pairs} runs`
  } per row; runs alternate Postern/Postfix; ` +
    `sessions ${sessions}, ${values.rcpts} rcpt, n ${values.n} (${
      values["n-large"]
    } above 100 KB) after a warm-up of ${values.warmup} (${values["warmup-large"]}); ` +
    `latencies in ms (a→d = accepted → delivered)`,
);
console.log(
  ["relay".padEnd(width), ...columns.map(([h, w]) => h.padStart(w)), "ratio (median of pairs)"]
    .join(" "),
);
for (const row of rows) {
  const r = median(row.ratios);
  const ratio = Number.isFinite(r) ? `${r.toFixed(2)}× ${row.versus}` : "";
  console.log(
    [row.label.padEnd(width), ...columns.map(([, w, f]) => f(row.lines).padStart(w)), ratio].join(
      " ",
    ),
  );
}
console.log("");
for (const row of rows) for (const line of row.lines) console.log(line);
