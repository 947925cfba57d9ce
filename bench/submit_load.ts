/**
 * A bounded SMTP load client for the bench, for what smtp-source cannot do: STARTTLS + AUTH PLAIN
 * submission, and a paced offered rate (the half-saturated latency check). One message per
 * connection, like smtp-source without -d: connect, EHLO, [STARTTLS, EHLO, AUTH PLAIN], MAIL,
 * RCPT × r, DATA, QUIT.
 *
 *   deno run -A bench/submit_load.ts --port 12525 --n 1000 --sessions 20 --size 2048
 *     [--tls --ca cert.pem --servername relay.bench.test --user U --pass P]
 *     [--rate 300 [--warmup 1]] [--probes FILE --runid ID] [--started FILE] [--ended FILE] [--time-limit 600]
 *
 * Every message is sent as From: <sender@bench.test> (the domain signed mode verifies). One in
 * every --probe-every messages (default: about 400 over the run) carries
 * `X-Bench-Probe: RUNID-id`, and its "final dot sent" and "250 read" times are appended to
 * --probes as "id t_dot t_ack" (seconds since the epoch), the format relay-bench.sh's own probe
 * client writes: the harness matches them to the sink's dump files for accept → delivered.
 * With --warmup S, the messages due in a paced run's first S seconds are sent and counted like
 * the rest but carry no probe tag: the relay under test was started for the run, and its first
 * fraction of a second (code not yet compiled, connections not yet open) is not the steady state
 * a latency at an offered rate describes (bench/README.md, "Half-saturated pair").
 * --started gets the wall-clock time the load began, after this runtime's own start-up (and, for
 * a paced run with --tls, after one login that warms the relay's login cache: see warmUp).
 * --ended gets the wall-clock time the last message was answered, taken before this client
 * writes its probe file: that write can wait a second or two on the disk the relay under test
 * has just flushed, and the relay's accept rate must not carry the client's own file I/O.
 *
 * Bounded in count (--n) and time (--time-limit); loopback only (--host must be 127.x or ::1).
 * The last line on stdout is the number of messages the relay answered 250 to, as smtp-source
 * prints it; a summary goes to stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "12525" },
    n: { type: "string", default: "1000" },
    sessions: { type: "string", default: "20" },
    size: { type: "string", default: "2048" },
    rcpts: { type: "string", default: "1" },
    tls: { type: "boolean", default: false },
    ca: { type: "string" },
    servername: { type: "string", default: "relay.bench.test" },
    user: { type: "string" },
    pass: { type: "string" },
    rate: { type: "string", default: "0" },
    warmup: { type: "string", default: "0" },
    probes: { type: "string" },
    runid: { type: "string", default: "load" },
    "probe-every": { type: "string" },
    "time-limit": { type: "string", default: "600" },
    started: { type: "string" },
    ended: { type: "string" },
  },
});

const host = values.host!;
if (!/^127\.|^::1$/.test(host)) throw new Error(`submit_load: loopback only, not ${host}`);
const port = Number(values.port);
const total = Number(values.n);
const sessions = Math.max(1, Number(values.sessions));
const size = Number(values.size);
const rcpts = Math.max(1, Number(values.rcpts));
const rate = Number(values.rate);
/**
 * Messages due before this (ms after the start) are not probes; paced runs only, and at most the
 * first half of the run, so a short one still has probes.
 */
const warmupMs = rate > 0
  ? Math.min(Math.max(0, Number(values.warmup)), total / rate / 2) * 1000
  : 0;
const deadline = performance.now() + Number(values["time-limit"]) * 1000;
const sampled = Math.max(1, total - Math.floor((rate * warmupMs) / 1000));
const probeEvery = Number(values["probe-every"] ?? Math.max(1, Math.floor(sampled / 400)));
const caCerts = values.ca ? [await Deno.readTextFile(values.ca)] : undefined;
if (values.tls && !(values.user && values.pass)) {
  throw new Error("submit_load: --tls needs --user and --pass");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Wall-clock seconds with sub-millisecond resolution, comparable with file mtimes. */
const wallSeconds = () => (performance.timeOrigin + performance.now()) / 1000;

/** The body: 78-character lines up to `size` bytes, then the final dot. */
const body = (() => {
  const line = "X".repeat(76) + "\r\n";
  return encoder.encode(line.repeat(Math.max(1, Math.ceil(size / line.length))) + ".\r\n");
})();

function header(id: number, probe: boolean): Uint8Array {
  return encoder.encode(
    "From: <sender@bench.test>\r\n" +
      "To: <user@example.com>\r\n" +
      `Subject: bench ${id}\r\n` +
      `Message-ID: <${id}.${values.runid}@client.bench.test>\r\n` +
      `Date: ${new Date().toUTCString()}\r\n` +
      (probe ? `X-Bench-Probe: ${values.runid}-${id}\r\n` : "") +
      "\r\n",
  );
}

/** Reads SMTP replies off one connection; the connection can be swapped for its TLS upgrade. */
class Replies {
  #buffer = "";
  #chunk = new Uint8Array(16 * 1024);
  constructor(public conn: Deno.Conn) {}

  async read(): Promise<number> {
    for (;;) {
      const end = this.#buffer.search(/(^|\n)\d{3} [^\n]*\n/);
      if (end >= 0) {
        const lineEnd = this.#buffer.indexOf("\n", end + 1);
        const line = this.#buffer.slice(end === 0 ? 0 : end + 1, lineEnd);
        this.#buffer = this.#buffer.slice(lineEnd + 1);
        return Number(line.slice(0, 3));
      }
      const n = await this.conn.read(this.#chunk);
      if (n === null) throw new Error("connection closed");
      this.#buffer += decoder.decode(this.#chunk.subarray(0, n));
    }
  }

  async command(line: string, expect: number): Promise<void> {
    await writeAll(this.conn, encoder.encode(line + "\r\n"));
    const code = await this.read();
    if (code !== expect) throw new Error(`${line.split(" ")[0]}: ${code}`);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

const auth = values.user
  ? btoa(String.fromCharCode(...encoder.encode(`\0${values.user}\0${values.pass}`)))
  : "";

/** Connects, greets and (with --tls) upgrades and logs in: the session ready for MAIL. */
async function open(): Promise<Replies> {
  const tcp = await Deno.connect({ hostname: host, port });
  tcp.setNoDelay(true);
  const replies = new Replies(tcp);
  try {
    if (await replies.read() !== 220) throw new Error("greeting");
    await replies.command("EHLO client.bench.test", 250);
    if (values.tls) {
      await replies.command("STARTTLS", 220);
      replies.conn = await Deno.startTls(tcp, {
        hostname: values.servername!,
        ...(caCerts ? { caCerts } : {}),
      });
      await replies.command("EHLO client.bench.test", 250);
      await replies.command(`AUTH PLAIN ${auth}`, 235);
    }
    return replies;
  } catch (error) {
    close(replies);
    throw error;
  }
}

function close(replies: Replies) {
  try {
    replies.conn.close();
  } catch { /* already closed by the peer */ }
}

/**
 * A paced run logs in once before its clock starts, as an app that has been sending for a while
 * has: the relay checks a new login's password with scrypt (~100-300 ms) and then remembers it, so
 * without this the sessions due in the first few hundred ms all wait on that first check and
 * reach DATA together, a burst at the relay's coldest moment instead of the offered rate.
 */
async function warmUp() {
  const replies = await open();
  await writeAll(replies.conn, encoder.encode("QUIT\r\n")).catch(() => {});
  await replies.read().catch(() => 0);
  close(replies);
}

/** One message on one connection; resolves to the ack time when the relay said 250. */
async function sendOne(id: number, probe: boolean): Promise<{ tDot: number; tAck: number }> {
  const replies = await open();
  try {
    await replies.command("MAIL FROM:<sender@bench.test>", 250);
    for (let r = 0; r < rcpts; r++) {
      await replies.command(`RCPT TO:<${id}.${r}user@example.com>`, 250);
    }
    await replies.command("DATA", 354);
    await writeAll(replies.conn, header(id, probe));
    const tDot = wallSeconds();
    await writeAll(replies.conn, body);
    const code = await replies.read();
    const tAck = wallSeconds();
    if (code !== 250) throw new Error(`end of data: ${code}`);
    await writeAll(replies.conn, encoder.encode("QUIT\r\n")).catch(() => {});
    await replies.read().catch(() => 0);
    return { tDot, tAck };
  } finally {
    close(replies);
  }
}

if (rate > 0 && values.tls) await warmUp();
if (values.started) await Deno.writeTextFile(values.started, wallSeconds().toFixed(6));
let next = 0;
let accepted = 0;
const failures = new Map<string, number>();
const acks: number[] = [];
const probeLines: string[] = [];
const start = performance.now();

async function worker() {
  while (next < total && performance.now() < deadline) {
    const id = ++next;
    const dueMs = rate > 0 ? ((id - 1) / rate) * 1000 : 0;
    if (rate > 0) {
      const wait = start + dueMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const probe = id % probeEvery === 0 && dueMs >= warmupMs;
    try {
      const { tDot, tAck } = await sendOne(id, probe);
      accepted++;
      acks.push((tAck - tDot) * 1000);
      if (probe) probeLines.push(`${id} ${tDot.toFixed(6)} ${tAck.toFixed(6)}`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      failures.set(reason, (failures.get(reason) ?? 0) + 1);
    }
  }
}

await Promise.all(Array.from({ length: Math.min(sessions, total) }, worker));
const seconds = (performance.now() - start) / 1000;
const endedAt = wallSeconds();
if (values.probes && probeLines.length > 0) {
  await Deno.writeTextFile(values.probes, probeLines.join("\n") + "\n", { append: true });
}
acks.sort((a, b) => a - b);
const pct = (p: number) => acks.length ? acks[Math.floor((acks.length - 1) * p)]!.toFixed(1) : "-";
console.error(
  `submit_load: ${accepted}/${total} accepted in ${seconds.toFixed(2)} s ` +
    `(${(accepted / seconds).toFixed(1)}/s), ack p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms` +
    (failures.size ? `, failures ${JSON.stringify(Object.fromEntries(failures))}` : ""),
);
console.log(accepted);
if (values.ended) await Deno.writeTextFile(values.ended, endedAt.toFixed(6));
