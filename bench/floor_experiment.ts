/**
 * Issue 18's floor: the least a relay on this stack can do and still keep the promise the bench
 * measures (the `250` only after the message is committed to a Deno KV file, then delivered and
 * its outcome committed), with none of Postern's features. A lock-step SMTP responder on
 * `Deno.listen`, a group commit of one key per message, a pool of pipelining clients on
 * `Deno.connect` that forward the message's bytes unchanged, and one delete per delivered message.
 * No parsing of headers, no scope, no events, indexes, stats, logs, limits or timeouts: whatever
 * this costs on a machine, any relay with the must-hold features on this stack costs more.
 * (bench/README.md, "The floor of this stack on this machine".)
 *
 *   deno task bench --postfix --modes plain --sign none --sizes 2048 --floor deno,node,deno10,node10
 *
 * runs it beside Postern and Postfix (the variants below); by hand:
 *
 *   deno run -A --unstable-kv bench/floor_experiment.ts RELAY_PORT SINK_PORT DATA_DIR &
 *   bench/relay-bench.sh -p RELAY_PORT -P SINK_PORT -n 15000 -s 20 -l 2048 -x $!
 *
 * Before it, `FLOOR_NET=node` runs both sides on node:net (as Postern's listeners and nodemailer
 * do) instead of Deno's TCP, and `FLOOR_EXTRA_KEYS=K` sets K more keys per message at intake and
 * K at its outcome, each in a key range of its own (as an event, an index or a row would be):
 * K = 4 makes the 10 mutations per message that issue 18 allows (`FLOOR_EXTRA_LAYOUT=adjacent`
 * puts a message's extra keys side by side in one range instead).
 *
 * @module
 */
import net from "node:net";

const [portArg, sinkArg, dir] = Deno.args;
if (!portArg || !sinkArg || !dir) {
  console.error("usage: floor_experiment.ts RELAY_PORT SINK_PORT DATA_DIR");
  Deno.exit(2);
}
const OUTBOUND_CONNECTIONS = 10;
/** Extra keys per message at each commit (FLOOR_EXTRA_KEYS): an event, an index, a counter. */
const EXTRA_KEYS = Number(Deno.env.get("FLOOR_EXTRA_KEYS") ?? 0);
/** FLOOR_EXTRA_LAYOUT=adjacent: a message's extra keys side by side in one range. */
const ADJACENT = Deno.env.get("FLOOR_EXTRA_LAYOUT") === "adjacent";
function extras(op: Deno.AtomicOperation, id: number, step: string) {
  for (let k = 0; k < EXTRA_KEYS; k++) {
    const key = ADJACENT ? ["x", step, id, k] : ["x", k, step, id];
    op.set(key, { id, step, at: Date.now(), to: "c@d.test", note: "x".repeat(80) });
  }
}
const enc = new TextEncoder();
const LF = 0x0a;

/** FLOOR_NET=node: the same relay on node:net (as Postern's listeners and nodemailer run). */
const NODE_NET = Deno.env.get("FLOOR_NET") === "node";

/** The two calls the floor makes of a connection, over either transport. */
interface Pipe {
  read(into: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
}

function denoPipe(conn: Deno.TcpConn): Pipe {
  conn.setNoDelay(true);
  return {
    read: (into) => conn.read(into),
    write: async (bytes) => {
      for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    },
    close: () => conn.close(),
  };
}

function nodePipe(socket: net.Socket): Pipe {
  socket.setNoDelay(true);
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  socket.on("data", (c: Uint8Array) => {
    chunks.push(c);
    poke();
  });
  socket.on("end", () => {
    ended = true;
    poke();
  });
  socket.on("error", () => {
    ended = true;
    poke();
  });
  socket.on("close", () => {
    ended = true;
    poke();
  });
  return {
    async read(into) {
      while (chunks.length === 0 && !ended) await new Promise<void>((r) => wake = r);
      const c = chunks.shift();
      if (!c) return null;
      const n = Math.min(c.length, into.length);
      into.set(c.subarray(0, n));
      if (n < c.length) chunks.unshift(c.subarray(n));
      return n;
    },
    write: (bytes) => new Promise((resolve) => socket.write(bytes, () => resolve())),
    close: () => socket.end(),
  };
}

await Deno.mkdir(dir, { recursive: true });
const kv = await Deno.openKv(`${dir}/floor.sqlite3`);

// --- group commit: one writer, everything that came during a commit goes in the next ----------
type Mutation = (op: Deno.AtomicOperation) => void;
let pending: { mutate: Mutation; done: () => void }[] = [];
let committing = false;
function commit(mutate: Mutation): Promise<void> {
  return new Promise((done) => {
    pending.push({ mutate, done });
    if (!committing) void runCommits();
  });
}
async function runCommits() {
  committing = true;
  while (pending.length > 0) {
    const batch = pending;
    pending = [];
    const op = kv.atomic();
    for (const p of batch) p.mutate(op);
    await op.commit();
    for (const p of batch) p.done();
  }
  committing = false;
}

// --- delivery: a queue in memory (the store has the message) and a pool of connections --------
interface Job {
  id: number;
  from: string;
  to: string[];
  data: Uint8Array;
}
const jobs: Job[] = [];
const idle: ((job: Job) => void)[] = [];
function hand(job: Job) {
  const worker = idle.pop();
  if (worker) worker(job);
  else jobs.push(job);
}
function next(): Promise<Job> {
  const job = jobs.shift();
  return job ? Promise.resolve(job) : new Promise((resolve) => idle.push(resolve));
}

/** Reads SMTP replies: resolves with the code of each final reply line. */
class Replies {
  #buf = "";
  #conn: Pipe;
  #chunk = new Uint8Array(16 * 1024);
  #dec = new TextDecoder();
  constructor(conn: Pipe) {
    this.#conn = conn;
  }
  async take(count: number): Promise<number[]> {
    const codes: number[] = [];
    while (codes.length < count) {
      const at = this.#buf.indexOf("\r\n");
      if (at < 0) {
        const n = await this.#conn.read(this.#chunk);
        if (n === null) throw new Error("sink closed");
        this.#buf += this.#dec.decode(this.#chunk.subarray(0, n));
        continue;
      }
      const line = this.#buf.slice(0, at);
      this.#buf = this.#buf.slice(at + 2);
      if (line[3] !== "-") codes.push(Number(line.slice(0, 3)));
    }
    return codes;
  }
}

/** The sink may start after the relay (relay-bench.sh starts it): connect when it answers. */
async function connectToSink(): Promise<Pipe> {
  for (;;) {
    try {
      if (!NODE_NET) {
        return denoPipe(await Deno.connect({ hostname: "127.0.0.1", port: Number(sinkArg) }));
      }
      return nodePipe(
        await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(Number(sinkArg), "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        }),
      );
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * One connection to the sink, taking message after message. The sink may go away (relay-bench.sh
 * starts one per run): the message in hand goes back to the front of the queue and a new
 * connection takes it.
 */
async function outbound() {
  for (;;) {
    const conn = await connectToSink();
    let job: Job | null = null;
    try {
      const replies = new Replies(conn);
      await replies.take(1);
      await conn.write(enc.encode("EHLO floor.test\r\n"));
      await replies.take(1);
      for (;;) {
        job = await next();
        await deliver(conn, replies, job);
        const done = job;
        job = null;
        // The next message need not wait for this outcome's commit (until it lands, a crash
        // means one more delivery of this one, as with any MTA).
        void commit((op) => {
          op.delete(["q", done.id]);
          extras(op, done.id, "out");
        });
      }
    } catch {
      if (job) jobs.unshift(job);
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }
}

async function deliver(conn: Pipe, replies: Replies, job: Job) {
  const envelope = `MAIL FROM:<${job.from}>\r\n` +
    job.to.map((r) => `RCPT TO:<${r}>\r\n`).join("") + "DATA\r\n";
  await conn.write(enc.encode(envelope));
  const codes = await replies.take(job.to.length + 2);
  if (codes.at(-1) !== 354) throw new Error(`sink said ${codes.join(" ")}`);
  await conn.write(job.data);
  const [code] = await replies.take(1);
  if (code !== 250) throw new Error(`sink said ${code}`);
}

// --- intake: a lock-step responder; the message's bytes (terminator included) kept as sent ----
let nextId = 0;
const END = enc.encode("\r\n.\r\n");

function indexOfEnd(buf: Uint8Array, from: number): number {
  for (let i = Math.max(from, 0); i + 4 < buf.length; i++) {
    if (
      buf[i] === 0x0d && buf[i + 1] === 0x0a && buf[i + 2] === 0x2e && buf[i + 3] === 0x0d &&
      buf[i + 4] === 0x0a
    ) return i;
  }
  return -1;
}

async function session(conn: Pipe) {
  const say = (s: string) => conn.write(enc.encode(s));
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  let inData = false;
  let from = "";
  let to: string[] = [];
  let scanned = 0;
  try {
    await say("220 floor.test ESMTP\r\n");
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) return;
      const grown = new Uint8Array(buf.length + n);
      grown.set(buf);
      grown.set(chunk.subarray(0, n), buf.length);
      buf = grown;
      for (;;) {
        if (inData) {
          // The terminator may follow the DATA line directly (an empty message): look from -2.
          const end = indexOfEnd(buf, scanned - 2);
          if (end < 0) {
            scanned = Math.max(0, buf.length - 4);
            break;
          }
          // Without the CRLF put in front at DATA (it is not the message's).
          const data = buf.slice(2, end + END.length);
          buf = buf.subarray(end + END.length);
          inData = false;
          const job = { id: nextId++, from, to, data };
          await commit((op) => {
            op.set(["q", job.id], { from, to, data });
            extras(op, job.id, "in");
          });
          hand(job);
          await say("250 2.0.0 queued\r\n");
          continue;
        }
        const at = buf.indexOf(LF);
        if (at < 0) break;
        const line = new TextDecoder().decode(buf.subarray(0, at)).replace(/\r$/, "");
        buf = buf.subarray(at + 1);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") await say("250-floor.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        else if (verb === "HELO") await say("250 floor.test\r\n");
        else if (verb === "MAIL") {
          from = /<([^>]*)>/.exec(line)?.[1] ?? "";
          to = [];
          await say("250 2.1.0 ok\r\n");
        } else if (verb === "RCPT") {
          to.push(/<([^>]*)>/.exec(line)?.[1] ?? "");
          await say("250 2.1.5 ok\r\n");
        } else if (verb === "DATA") {
          inData = true;
          scanned = 0;
          // The message starts after the DATA line; the terminator search needs its CRLF.
          const rest = buf;
          buf = new Uint8Array(rest.length + 2);
          buf.set([0x0d, 0x0a]);
          buf.set(rest, 2);
          await say("354 go ahead\r\n");
        } else if (verb === "QUIT") {
          await say("221 2.0.0 bye\r\n");
          return;
        } else if (verb === "RSET" || verb === "NOOP") await say("250 2.0.0 ok\r\n");
        else await say("502 5.5.2 not here\r\n");
      }
    }
  } catch {
    // the client left
  } finally {
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
}

for (let i = 0; i < OUTBOUND_CONNECTIONS; i++) void outbound();
if (NODE_NET) {
  net.createServer((socket) => void session(nodePipe(socket))).listen(
    Number(portArg),
    "127.0.0.1",
  );
  console.log("ready");
} else {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(portArg) });
  console.log("ready");
  for await (const conn of listener) void session(denoPipe(conn));
}
