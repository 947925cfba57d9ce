/**
 * A stand-in for denokv, not denokv: an HTTP server on loopback that speaks the KV Connect
 * protocol (denokv's proto/kv-connect.md: metadata exchange, `snapshot_read`, `atomic_write`,
 * `watch`) so that `Deno.openKv("http://127.0.0.1:<port>")` works against it, the way Postern
 * opens hosted Deno KV or a self-hosted denokv. No KV Connect server package exists on the
 * machines this project runs on (denokv is a Rust binary), so the remote-store path is tested
 * through this.
 *
 * What it shares with denokv:
 * - the wire format: the protobuf codecs that ship in the `@deno/kv` npm package (generated from
 *   denokv's proto/schema/datapath.proto);
 * - the limits of denokv's proto/limits.rs, checked as its proto/convert.rs checks them, refused
 *   with 400 and a plain-text reason as denokv/main.rs does ({@linkcode DENOKV_LIMITS});
 * - the storage: a local Deno KV file (the SQLite schema Deno itself creates, written with the
 *   statements of denokv's sqlite/backend.rs), so keys and values are stored byte for byte as the
 *   client sent them and the file opens with `Deno.openKv(path)` afterwards;
 * - no queues: an atomic write with an enqueue is refused.
 *
 * For fault tests it can be stopped (connections refused, as for a dead server) and started
 * again on the same port with the same file; the client's cached metadata stays valid across.
 *
 * @module
 */

import { createRequire } from "node:module";
import { DatabaseSync, type StatementSync } from "node:sqlite";
// Resolving this type installs the package; its codecs are not in its "exports", so they are
// loaded by file path below.
import type { KvU64 as _InstallsDenoKv } from "@deno/kv";

/** denokv's proto/limits.rs (denoland/denokv, proto/limits.rs). */
export const DENOKV_LIMITS = {
  maxWriteKeyBytes: 2048,
  maxReadKeyBytes: 2049,
  maxValueBytes: 65_536,
  maxReadRanges: 10,
  maxReadEntries: 1000,
  maxChecks: 10,
  maxMutations: 1000,
  maxTotalMutationBytes: 819_200,
  maxWatchedKeys: 10,
} as const;

type Encoding = "VE_UNSPECIFIED" | "VE_V8" | "VE_LE64" | "VE_BYTES";
const ENCODING_NUM: Record<Encoding, number> = {
  VE_UNSPECIFIED: 0,
  VE_V8: 1,
  VE_LE64: 2,
  VE_BYTES: 3,
};
const ENCODING_NAME: Encoding[] = ["VE_UNSPECIFIED", "VE_V8", "VE_LE64", "VE_BYTES"];

interface ReadRange {
  start: Uint8Array;
  end: Uint8Array;
  limit: number;
  reverse: boolean;
}
interface KvEntry {
  key: Uint8Array;
  value: Uint8Array;
  encoding: Encoding;
  versionstamp: Uint8Array;
}
interface Mutation {
  key: Uint8Array;
  value?: { data: Uint8Array; encoding: Encoding };
  mutationType: string;
  expireAtMs: string;
}
interface AtomicWrite {
  checks: { key: Uint8Array; versionstamp: Uint8Array }[];
  mutations: Mutation[];
  enqueues: unknown[];
}
interface Codec<T> {
  encodeBinary(value: T): Uint8Array;
  decodeBinary(binary: Uint8Array): T;
}

const require = createRequire(import.meta.url);
const protoDir = require.resolve("@deno/kv").replace(
  /npm\.js$/,
  "proto/messages/com/deno/kv/datapath/",
);
function codec<T>(name: string): Codec<T> {
  return require(`${protoDir}${name}.js`) as Codec<T>;
}
export const codecs = {
  snapshotRead: codec<{ ranges: ReadRange[] }>("SnapshotRead"),
  snapshotReadOutput: codec<{
    ranges: { values: KvEntry[] }[];
    readDisabled: boolean;
    readIsStronglyConsistent: boolean;
    status: string;
  }>("SnapshotReadOutput"),
  atomicWrite: codec<AtomicWrite>("AtomicWrite"),
  atomicWriteOutput: codec<{ status: string; versionstamp: Uint8Array; failedChecks: number[] }>(
    "AtomicWriteOutput",
  ),
  watch: codec<{ keys: { key: Uint8Array }[] }>("Watch"),
  watchOutput: codec<{
    status: string;
    keys: { changed: boolean; entryIfChanged?: KvEntry }[];
  }>("WatchOutput"),
};

/** A request denokv would refuse with 400 (its ApiError's message, as plain text). */
class Refused extends Error {}

function versionstampOf(version: bigint): Uint8Array {
  const out = new Uint8Array(10);
  new DataView(out.buffer).setBigUint64(0, version);
  return out;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function le64(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new Refused("The value encoding is invalid.");
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}
function toLe64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
  return out;
}

/** The checks of denokv's proto/convert.rs `TryFrom<pb::SnapshotRead>`. */
function checkRead(ranges: ReadRange[]) {
  const l = DENOKV_LIMITS;
  if (ranges.length > l.maxReadRanges) throw new Refused("Too many read ranges requested.");
  let total = 0;
  for (const r of ranges) {
    if (!(r.limit > 0)) throw new Refused("Invalid read range limit.");
    if (r.start.length > l.maxReadKeyBytes || r.end.length > l.maxReadKeyBytes) {
      throw new Refused("Key too long.");
    }
    total += r.limit;
  }
  if (total > l.maxReadEntries) throw new Refused("Read range too large.");
}

/** The checks of denokv's proto/convert.rs `TryFrom<pb::AtomicWrite>`. */
function checkWrite(w: AtomicWrite) {
  const l = DENOKV_LIMITS;
  if (w.checks.length > l.maxChecks) throw new Refused("Too many checks.");
  if (w.mutations.length + w.enqueues.length > l.maxMutations) {
    throw new Refused("Too many mutations.");
  }
  let total = 0;
  for (const c of w.checks) {
    if (c.key.length > l.maxReadKeyBytes) throw new Refused("Key too long.");
    total += c.key.length;
    if (c.versionstamp.length !== 0 && c.versionstamp.length !== 10) {
      throw new Refused("Invalid versionstamp.");
    }
  }
  for (const m of w.mutations) {
    if (m.key.length > l.maxWriteKeyBytes) throw new Refused("Key too long.");
    total += m.key.length;
    const size = m.value?.data.length ?? 0;
    if (size > l.maxValueBytes) throw new Refused("Value too long.");
    total += size;
    if (m.mutationType !== "M_DELETE" && m.value === undefined) {
      throw new Refused("Invalid mutation kind.");
    }
    if (BigInt(m.expireAtMs) < -1n) throw new Refused("Invalid mutation expire at.");
  }
  // Postern uses none, and the issue asks for none: refused outright rather than half-served.
  if (w.enqueues.length > 0) throw new Refused("Queues are not supported by this stand-in.");
  if (total > l.maxTotalMutationBytes) throw new Refused("Atomic write too large.");
}

interface Watcher {
  keys: Uint8Array[];
  send(changed: Set<string>): void;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** The database: denokv's sqlite/backend.rs statements over a Deno KV file. */
class Store {
  #db: DatabaseSync;
  #st: Record<string, StatementSync>;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec("pragma journal_mode = wal; pragma busy_timeout = 5000;");
    const p = (sql: string) => this.#db.prepare(sql);
    this.#st = {
      scan: p(
        "select k, v, v_encoding, version from kv where k >= ? and k < ? and " +
          "(expiration_ms < 0 or expiration_ms > ?) order by k asc limit ?",
      ),
      scanReverse: p(
        "select k, v, v_encoding, version from kv where k >= ? and k < ? and " +
          "(expiration_ms < 0 or expiration_ms > ?) order by k desc limit ?",
      ),
      version: p("select version from kv where k = ?"),
      value: p("select v, v_encoding from kv where k = ?"),
      inc: p("update data_version set version = version + ? where k = 0 returning version"),
      set: p(
        "insert into kv (k, v, v_encoding, version, expiration_ms) values (?, ?, ?, ?, ?) " +
          "on conflict(k) do update set v = excluded.v, v_encoding = excluded.v_encoding, " +
          "version = excluded.version, expiration_ms = excluded.expiration_ms",
      ),
      del: p("delete from kv where k = ?"),
    };
    for (const s of Object.values(this.#st)) s.setReadBigInts(true);
  }

  close() {
    this.#db.close();
  }

  read(ranges: ReadRange[]): KvEntry[][] {
    const now = Date.now();
    this.#db.exec("begin");
    try {
      return ranges.map((r) =>
        (r.reverse ? this.#st.scanReverse! : this.#st.scan!).all(r.start, r.end, now, r.limit)
          .map((row) => ({
            key: row.k as Uint8Array,
            value: row.v as Uint8Array,
            encoding: ENCODING_NAME[Number(row.v_encoding)] ?? "VE_UNSPECIFIED",
            versionstamp: versionstampOf(row.version as bigint),
          }))
      );
    } finally {
      this.#db.exec("commit");
    }
  }

  get(key: Uint8Array): KvEntry | null {
    return this.read([{ start: key, end: new Uint8Array([...key, 0]), limit: 1, reverse: false }])[
      0
    ]![0] ?? null;
  }

  /** Returns the new versionstamp, or null when a check failed. */
  write(w: AtomicWrite): { versionstamp: Uint8Array; keys: Uint8Array[] } | null {
    const st = this.#st;
    this.#db.exec("begin immediate");
    try {
      for (const c of w.checks) {
        const row = st.version!.get(c.key);
        const real = row ? versionstampOf(row.version as bigint) : null;
        const expected = c.versionstamp.length === 0 ? null : c.versionstamp;
        if (!sameBytes(real, expected)) {
          this.#db.exec("rollback");
          return null;
        }
      }
      // denokv advances the version by a random 1..9 so clients cannot rely on +1.
      const step = 1 + Math.floor(Math.random() * 9);
      const version = st.inc!.get(step)!.version as bigint;
      const stamp = versionstampOf(version);
      const keys: Uint8Array[] = [];
      for (const m of w.mutations) {
        const expires = BigInt(m.expireAtMs) > 0n ? BigInt(m.expireAtMs) : -1n;
        const value = m.value!;
        switch (m.mutationType) {
          case "M_SET":
            st.set!.run(m.key, value.data, ENCODING_NUM[value.encoding], version, expires);
            keys.push(m.key);
            break;
          case "M_DELETE":
            st.del!.run(m.key);
            keys.push(m.key);
            break;
          case "M_SUM":
          case "M_MIN":
          case "M_MAX": {
            if (value.encoding !== "VE_LE64") {
              throw new Refused(
                "Sum of V8 values is not supported by this stand-in (Postern sums Deno.KvU64).",
              );
            }
            const operand = le64(value.data);
            const old = st.value!.get(m.key);
            let next = operand;
            if (old) {
              if (Number(old.v_encoding) !== ENCODING_NUM.VE_LE64) {
                const op = m.mutationType.slice(2).toLowerCase();
                throw new Refused(
                  `Failed to perform '${op}' mutation on a non-U64 value in the database`,
                );
              }
              const cur = le64(old.v as Uint8Array);
              next = m.mutationType === "M_SUM"
                ? cur + operand
                : m.mutationType === "M_MIN"
                ? (cur < operand ? cur : operand)
                : (cur > operand ? cur : operand);
            }
            st.set!.run(m.key, toLe64(next), ENCODING_NUM.VE_LE64, version, expires);
            keys.push(m.key);
            break;
          }
          case "M_SET_SUFFIX_VERSIONSTAMPED_KEY": {
            const suffix = new TextEncoder().encode(hex(stamp));
            const key = new Uint8Array([...m.key, 0x02, ...suffix, 0x00]);
            st.set!.run(key, value.data, ENCODING_NUM[value.encoding], version, expires);
            keys.push(key);
            break;
          }
          default:
            throw new Refused("Invalid mutation kind.");
        }
      }
      this.#db.exec("commit");
      return { versionstamp: stamp, keys };
    } catch (err) {
      this.#db.exec("rollback");
      throw err;
    }
  }
}

export interface KvConnectStandinOptions {
  /** The Deno KV file behind it; created if missing. */
  path: string;
  /** The access token clients must send (as DENO_KV_ACCESS_TOKEN). */
  token: string;
  /** @default a free port */
  port?: number;
}

/** A running stand-in; see the module doc. */
export class KvConnectStandin {
  readonly path: string;
  readonly token: string;
  port: number;
  #server: Deno.HttpServer | null = null;
  #store: Store | null = null;
  #watchers = new Set<Watcher>();
  #abort: AbortController | null = null;
  /** Requests refused for a limit, by reason, so tests can see what a client ran into. */
  refusals: string[] = [];
  /** Data-path requests served, by method. */
  served: Record<string, number> = { snapshot_read: 0, atomic_write: 0, watch: 0 };

  private constructor(options: KvConnectStandinOptions) {
    this.path = options.path;
    this.token = options.token;
    this.port = options.port ?? 0;
  }

  static async start(options: KvConnectStandinOptions): Promise<KvConnectStandin> {
    // Deno creates the file with its own schema (denokv's sqlite migrations), then lets go.
    (await Deno.openKv(options.path)).close();
    const s = new KvConnectStandin(options);
    await s.resume();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#server !== null;
  }

  /** Starts serving again on the same port and file (after {@linkcode stop}). */
  resume(): Promise<void> {
    if (this.#server) return Promise.resolve();
    this.#store = new Store(this.path);
    this.#abort = new AbortController();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: this.port,
      signal: this.#abort.signal,
      onListen: (addr) => {
        this.port = addr.port;
        resolve();
      },
    }, (req) => this.#handle(req));
    return promise;
  }

  /** Stops serving: connections are closed and refused until {@linkcode resume}. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    for (const w of this.#watchers) w.send(new Set(["__closing__"]));
    this.#watchers.clear();
    this.#abort?.abort();
    await server.finished;
    this.#store?.close();
    this.#store = null;
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    try {
      if (req.method !== "POST") return text(404, "Resource not found.");
      if (url.pathname === "/") return await this.#metadata(req);
      const auth = this.#checkDataPath(req);
      if (auth) return auth;
      const body = new Uint8Array(await req.arrayBuffer());
      switch (url.pathname) {
        case "/v2/snapshot_read":
          this.served.snapshot_read!++;
          return this.#snapshotRead(body);
        case "/v2/atomic_write":
          this.served.atomic_write!++;
          return this.#atomicWrite(body);
        case "/v2/watch":
          this.served.watch!++;
          return this.#watch(body);
      }
      return text(404, "Resource not found.");
    } catch (err) {
      if (err instanceof Refused) {
        this.refusals.push(err.message);
        return text(400, err.message);
      }
      return text(500, "Internal server error");
    }
  }

  async #metadata(req: Request): Promise<Response> {
    let versions: number[] = [];
    try {
      versions = (await req.json()).supportedVersions ?? [];
    } catch {
      return text(400, "The server requires at least protocol version 2.");
    }
    const version = versions.includes(3) ? 3 : versions.includes(2) ? 2 : 0;
    if (version === 0) {
      return text(400, "The server could not negotiate a protocol version.");
    }
    if (!this.#authorized(req)) return text(401, "Invalid access token.");
    return Response.json({
      version,
      databaseId: "00000000-0000-0000-0000-000000000000",
      endpoints: [{ url: "/v2", consistency: "strong" }],
      token: this.token,
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
  }

  #authorized(req: Request): boolean {
    const [scheme, token] = (req.headers.get("authorization") ?? "").split(" ");
    return scheme?.toLowerCase() === "bearer" && token === this.token;
  }

  #checkDataPath(req: Request): Response | null {
    const v = req.headers.get("x-denokv-version");
    if (v !== "2" && v !== "3") return text(400, "Expected protocol version 2.");
    if (!this.#authorized(req)) return text(401, "Invalid access token.");
    if (req.headers.get("x-denokv-database-id") !== "00000000-0000-0000-0000-000000000000") {
      return text(400, "Invalid database id.");
    }
    return null;
  }

  #store_(): Store {
    if (!this.#store) throw new Error("stopped");
    return this.#store;
  }

  #snapshotRead(body: Uint8Array): Response {
    const { ranges } = codecs.snapshotRead.decodeBinary(body);
    checkRead(ranges);
    const out = this.#store_().read(ranges);
    return proto(codecs.snapshotReadOutput.encodeBinary({
      ranges: out.map((values) => ({ values })),
      readDisabled: false,
      readIsStronglyConsistent: true,
      status: "SR_SUCCESS",
    }));
  }

  #atomicWrite(body: Uint8Array): Response {
    const write = codecs.atomicWrite.decodeBinary(body);
    checkWrite(write);
    const result = this.#store_().write(write);
    if (result) {
      const changed = new Set(result.keys.map(hex));
      for (const w of this.#watchers) w.send(changed);
    }
    return proto(codecs.atomicWriteOutput.encodeBinary(
      result
        ? { status: "AW_SUCCESS", versionstamp: result.versionstamp, failedChecks: [] }
        : { status: "AW_CHECK_FAILURE", versionstamp: new Uint8Array(0), failedChecks: [] },
    ));
  }

  #watch(body: Uint8Array): Response {
    const { keys } = codecs.watch.decodeBinary(body);
    if (keys.length > DENOKV_LIMITS.maxWatchedKeys) throw new Refused("Too many watched keys.");
    for (const k of keys) {
      if (k.key.length > DENOKV_LIMITS.maxWriteKeyBytes) throw new Refused("Key too long.");
    }
    const watched = keys.map((k) => k.key);
    const store = this.#store_();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const frame = (msg: Uint8Array) => {
      const out = new Uint8Array(4 + msg.length);
      new DataView(out.buffer).setUint32(0, msg.length, true);
      out.set(msg, 4);
      return out;
    };
    const snapshot = (changed: Set<string> | null) =>
      frame(codecs.watchOutput.encodeBinary({
        status: "SR_SUCCESS",
        keys: watched.map((key) => {
          if (changed && !changed.has(hex(key))) return { changed: false };
          const entry = store.get(key);
          return entry ? { changed: true, entryIfChanged: entry } : { changed: true };
        }),
      }));
    let ping: ReturnType<typeof setInterval> | undefined;
    const watcher: Watcher = {
      keys: watched,
      send: (changed) => {
        try {
          if (changed.has("__closing__")) {
            clearInterval(ping);
            controller.close();
          } else if (watched.some((k) => changed.has(hex(k)))) {
            controller.enqueue(snapshot(changed));
          }
        } catch {
          this.#watchers.delete(watcher);
        }
      },
    };
    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        c.enqueue(snapshot(null));
        this.#watchers.add(watcher);
        // denokv pings every 5 s so a dead client is noticed.
        ping = setInterval(() => {
          try {
            c.enqueue(new Uint8Array(4));
          } catch {
            clearInterval(ping);
          }
        }, 5_000);
      },
      cancel: () => {
        clearInterval(ping);
        this.#watchers.delete(watcher);
      },
    });
    return new Response(stream, { headers: { "content-type": "application/octet-stream" } });
  }
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}

function proto(body: Uint8Array): Response {
  return new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": "application/x-protobuf" },
  });
}

/** A stand-in in a child process of its own, so a test can `kill -9` it as a crash would. */
export interface StandinProcess {
  url: string;
  port: number;
  /** SIGKILL, and wait for the process to go. */
  kill9(): Promise<void>;
  /** Starts a new process on the same port and file. */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startStandinProcess(
  options: KvConnectStandinOptions,
): Promise<StandinProcess> {
  let child: Deno.ChildProcess | null = null;
  let port = options.port ?? 0;
  const spawn = async () => {
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--unstable-kv", new URL(import.meta.url).pathname],
      env: {
        STANDIN_PATH: options.path,
        STANDIN_TOKEN: options.token,
        STANDIN_PORT: String(port),
      },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Cannot start the stand-in: it exited before listening (${out})`);
      out += value;
    }
    port = JSON.parse(out.split("\n")[0]!).port;
    reader.releaseLock();
    proc.stdout.cancel().catch(() => {});
    child = proc;
  };
  await spawn();
  const kill9 = async () => {
    if (!child) return;
    const c: Deno.ChildProcess = child;
    child = null;
    c.kill("SIGKILL");
    await c.status;
  };
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    kill9,
    restart: async () => {
      await kill9();
      await spawn();
    },
    [Symbol.asyncDispose]: kill9,
  };
}

if (import.meta.main) {
  const standin = await KvConnectStandin.start({
    path: Deno.env.get("STANDIN_PATH")!,
    token: Deno.env.get("STANDIN_TOKEN")!,
    port: Number(Deno.env.get("STANDIN_PORT") ?? 0),
  });
  console.log(JSON.stringify({ port: standin.port }));
}
