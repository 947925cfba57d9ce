/**
 * Runs the real relay (`main.ts`) as a child process, the way an operator would, so
 * end-to-end tests cover configuration, startup, crashes and restarts.
 *
 * The contract with main.ts: configuration comes from `POSTERN_*` environment variables,
 * every log line on stdout is one JSON object, and `{"event":"ready"}` means all
 * listeners are bound.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { freePorts } from "./free_port.ts";

export { freePort, freePorts } from "./free_port.ts";
export { type CommandResult, runCommand, type RunCommandOptions } from "./run_command.ts";

/** The repository root (the directory holding deno.json and main.ts). */
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

export interface RelayOptions {
  /** Added to (and overriding) the `POSTERN_*` variables startRelay() sets. */
  env?: Record<string, string>;
  /** @default a fresh `Deno.makeTempDir()` */
  dataDir?: string;
  /** The module to run instead of main.ts; for this file's own tests. @default `${repoRoot}/main.ts` */
  entryPoint?: string;
  /** How long to wait for the `ready` log line. @default 30000 */
  readyTimeoutMs?: number;
  /** Deno's permission flags for the relay. @default ["--allow-all"] */
  permissions?: string[];
}

export interface ApiInit {
  /** @default "POST" with a body, "GET" without */
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Bearer token; `""` sends no Authorization header. @default the relay's admin token */
  token?: string;
}

export interface ApiResponse {
  status: number;
  /** The parsed JSON body; the raw text when it is not JSON; null when empty. */
  // deno-lint-ignore no-explicit-any -- tests index into arbitrary response shapes.
  json: any;
  headers: Headers;
}

export type LogLine = Record<string, unknown>;

/** A running relay process started by {@linkcode startRelay}. */
export interface Relay {
  dataDir: string;
  smtpPort: number;
  smtpsPort: number;
  httpPort: number;
  adminToken: string;
  /** Every stdout line, parsed; a line that is not JSON appears as `{ unparsed: line }`. */
  logs: LogLine[];
  /** Everything written to stderr so far. */
  stderr: string;
  pid: number;
  /** Calls the admin HTTP API at `http://127.0.0.1:httpPort` + `path`. */
  api(path: string, init?: ApiInit): Promise<ApiResponse>;
  /**
   * Resolves with the first log line, past or future, that satisfies `pred`; rejects after
   * `timeoutMs` (default 20000) or when the process exits without one.
   */
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Kills the process with SIGKILL, as a crash would, and waits for it to go. */
  kill9(): Promise<void>;
  /**
   * Sends `signal` (default SIGTERM) and waits for the exit; a relay still running
   * 15 s later is killed and the promise rejects.
   */
  stop(signal?: Deno.Signal): Promise<{ code: number }>;
  /** Stops the process if it still runs, then starts a new one on the same data dir, ports and env. */
  restart(extraEnv?: Record<string, string>): Promise<Relay>;
  /** Stops the process and removes the data dir if startRelay() created it. */
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_READY_TIMEOUT_MS = 30_000;
const DEFAULT_LOG_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

/** Processes still running, so a test run that forgets one does not leave it behind. */
const running = new Set<Deno.ChildProcess>();
globalThis.addEventListener("unload", () => {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/**
 * How often a start is tried again on new ports when one the harness picked was taken meanwhile:
 * freePorts() releases its ports before the relay binds them, and on a busy machine a client's
 * outgoing connection can be given one of them in between.
 */
const PORT_RACE_RETRIES = 3;

/** Starts the relay and resolves once it logs `ready`. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay> {
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "postern_test_" });
  for (let attempt = 1;; attempt++) {
    const [smtpPort, smtpsPort, httpPort] = await freePorts(3);
    const env: Record<string, string> = {
      POSTERN_DATA_DIR: dataDir,
      POSTERN_LISTEN: "127.0.0.1",
      POSTERN_SMTP_PORT: String(smtpPort),
      POSTERN_SMTPS_PORT: String(smtpsPort),
      POSTERN_HTTP_PORT: String(httpPort),
      POSTERN_ADMIN_TOKEN: random_token(),
      POSTERN_HOSTNAME: "relay.test",
      // Within STOP_TIMEOUT_MS: the grace bounds how long a stop may wait for deliveries, so a
      // stop that waits it out still ends inside the time the harness gives it.
      POSTERN_SHUTDOWN_GRACE: "8s",
      ...options.env,
    };
    try {
      return await spawn_relay({
        env,
        ownsDataDir,
        entryPoint: options.entryPoint ?? `${repoRoot}/main.ts`,
        readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
        permissions: options.permissions ?? ["--allow-all"],
      });
    } catch (error) {
      if (attempt < PORT_RACE_RETRIES && lostPortRace(error, options.env ?? {})) continue;
      // Nobody holds a handle that could clean up the dir we made, so do it here.
      if (ownsDataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      throw error;
    }
  }
}

/** The relay could not bind a port the harness picked, not one the test asked for. */
function lostPortRace(error: unknown, asked: Record<string, string>): boolean {
  const text = error instanceof Error ? error.message : "";
  const setting = /(POSTERN_(?:SMTP|SMTPS|HTTP)_PORT): cannot listen on .*EADDRINUSE/.exec(text);
  return setting !== null && !(setting[1]! in asked);
}

interface SpawnPlan {
  env: Record<string, string>;
  ownsDataDir: boolean;
  entryPoint: string;
  readyTimeoutMs: number;
  permissions: string[];
}

async function spawn_relay(plan: SpawnPlan): Promise<Relay> {
  const { env } = plan;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...plan.permissions, "--unstable-kv", plan.entryPoint],
    cwd: repoRoot,
    // Instead of inheriting, rebuild the environment: a POSTERN_* variable from the shell
    // that runs the tests must not change the relay under test.
    clearEnv: true,
    env: { ...inherited_env(), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(child);

  let exitStatus: Deno.CommandStatus | undefined;
  let ownsDataDir = plan.ownsDataDir;
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((listener) => listener());
  /** Signals only the process we spawned, through its handle (so by its PID). */
  const send_signal = (signal: Deno.Signal) => {
    if (exitStatus !== undefined) return;
    try {
      child.kill(signal);
    } catch (error) {
      // It exited on its own between our check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  };
  /** The first log line, past or future, matching `pred`; or why there is none. */
  const await_line = (pred: (line: LogLine) => boolean, timeoutMs: number) =>
    new Promise<LogLine | string>((resolve) => {
      let checked = 0;
      const finish = (result: LogLine | string) => {
        clearTimeout(timer);
        listeners.delete(check);
        resolve(result);
      };
      const check = () => {
        for (; checked < relay.logs.length; checked++) {
          const line = relay.logs[checked];
          if (line !== undefined && pred(line)) return finish(line);
        }
        if (exitStatus !== undefined) {
          finish(`it exited with code ${exitStatus.code} before logging it`);
        }
      };
      const timer = setTimeout(() => finish(`none came within ${timeoutMs} ms`), timeoutMs);
      listeners.add(check);
      check();
    });

  const relay: Relay = {
    dataDir: required(env, "POSTERN_DATA_DIR"),
    smtpPort: Number(required(env, "POSTERN_SMTP_PORT")),
    smtpsPort: Number(required(env, "POSTERN_SMTPS_PORT")),
    httpPort: Number(required(env, "POSTERN_HTTP_PORT")),
    adminToken: required(env, "POSTERN_ADMIN_TOKEN"),
    logs: [],
    stderr: "",
    pid: child.pid,
    api: (path, init) => call_api(relay, path, init),
    async waitForLog(pred, timeoutMs = DEFAULT_LOG_TIMEOUT_MS) {
      const found = await await_line(pred, timeoutMs);
      if (typeof found === "string") {
        throw failure(relay, `Cannot find the awaited log line as ${found}`);
      }
      return found;
    },
    async kill9() {
      send_signal("SIGKILL");
      await exited;
    },
    async stop(signal = "SIGTERM") {
      if (exitStatus === undefined) {
        send_signal(signal);
        const timer = setTimeout(() => send_signal("SIGKILL"), STOP_TIMEOUT_MS);
        const status = await exited.finally(() => clearTimeout(timer));
        if (status.signal === "SIGKILL" && signal !== "SIGKILL") {
          throw failure(
            relay,
            `Cannot stop the relay as it was still running ${STOP_TIMEOUT_MS} ms after ${signal}`,
          );
        }
      }
      return { code: (await exited).code };
    },
    async restart(extraEnv = {}) {
      await relay.stop();
      // The data dir now belongs to the new process: disposing of this one must keep it.
      const successor = await spawn_relay({ ...plan, env: { ...env, ...extraEnv } });
      ownsDataDir = false;
      return successor;
    },
    async [Symbol.asyncDispose]() {
      if (exitStatus === undefined) await relay.stop().catch(() => relay.kill9());
      await exited;
      if (ownsDataDir) await Deno.remove(relay.dataDir, { recursive: true }).catch(() => {});
    },
  };

  // Both pipes are drained for the process's whole life; a full pipe would block the relay.
  const stdoutDone = read_lines(child.stdout, (line) => {
    relay.logs.push(parse_log_line(line));
    notify();
  });
  const stderrDone = read_lines(child.stderr, (line) => {
    relay.stderr += line + "\n";
  });
  // `exited` settles only once the pipes are drained too, so the last log lines are in.
  const exited = Promise.all([child.status, stdoutDone, stderrDone]).then(([status]) => {
    running.delete(child);
    exitStatus = status;
    notify();
    return status;
  });

  const ready = await await_line((line) => line.event === "ready", plan.readyTimeoutMs);
  if (typeof ready === "string") {
    await relay.kill9();
    throw failure(
      relay,
      `Cannot start ${plan.entryPoint} as, awaiting {"event":"ready"}, ${ready}`,
    );
  }
  return relay;
}

/**
 * The environment of a relay started by hand (not by startRelay): the caller's, without its
 * POSTERN_* variables, plus a data dir, loopback, free ports and a fixed admin token.
 */
export async function relayEnvironment(dataDir: string): Promise<Record<string, string>> {
  const [smtpPort, smtpsPort, httpPort] = await freePorts(3);
  return {
    ...inherited_env(),
    NO_COLOR: "1",
    POSTERN_DATA_DIR: dataDir,
    POSTERN_LISTEN: "127.0.0.1",
    POSTERN_SMTP_PORT: String(smtpPort),
    POSTERN_SMTPS_PORT: String(smtpsPort),
    POSTERN_HTTP_PORT: String(httpPort),
    POSTERN_HOSTNAME: "relay.test",
    POSTERN_ADMIN_TOKEN: "hand-started-admin-token-0123456789",
  };
}

export interface ExitResult {
  code: number;
  stderr: string;
  stdout: string;
}

/**
 * Runs main.ts once, on a fresh data dir and free ports, with `env` added to the POSTERN_*
 * settings and `args` after main.ts, and waits for it to exit by itself: for start-up that must
 * refuse (a bad setting) or answer and leave (`--help`). One that starts after all is killed
 * after 30 s and shows as exit 137.
 */
export async function runRelayToExit(
  env: Record<string, string>,
  args: string[] = [],
): Promise<ExitResult> {
  const dataDir = await Deno.makeTempDir({ prefix: "postern_test_exit_" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "main.ts", ...args],
    cwd: repoRoot,
    clearEnv: true,
    env: { ...await relayEnvironment(dataDir), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    const output = await child.output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: withoutLauncherNotes(new TextDecoder().decode(output.stderr)),
    };
  } finally {
    clearTimeout(timer);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/**
 * The relay's stderr without what Deno itself prints before main.ts runs: when several relays
 * start at once, each may wait for the node_modules lock and say so on stderr.
 */
function withoutLauncherNotes(stderr: string): string {
  return stderr.replace(/^Blocking waiting for file lock on [^\n]*\n/gm, "");
}

async function call_api(relay: Relay, path: string, init: ApiInit = {}): Promise<ApiResponse> {
  const headers = new Headers();
  const token = init.token ?? relay.adminToken;
  if (token !== "") headers.set("authorization", `Bearer ${token}`);
  if (init.body !== undefined) headers.set("content-type", "application/json");
  const response = await fetch(`http://127.0.0.1:${relay.httpPort}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let json: unknown = null;
  if (text !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  return { status: response.status, json, headers: response.headers };
}

/** Calls `onLine` for each line of `stream` as it arrives, and for a last unterminated one. */
async function read_lines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLine(line.replace(/\r$/, ""));
  }
  if (pending !== "") onLine(pending);
}

function parse_log_line(line: string): LogLine {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      return value as LogLine;
    }
  } catch {
    // Not JSON: kept below, since a stray console.log is worth seeing in a failure.
  }
  return { unparsed: line };
}

/** An error that shows what the relay said, since the test cannot see its output. */
function failure(relay: Relay, message: string): Error {
  const lastLogs = relay.logs.slice(-20).map((line) => JSON.stringify(line)).join("\n");
  const stderr = relay.stderr.slice(-4000);
  return new Error(
    `${message} (pid ${relay.pid}, data dir ${relay.dataDir})\n` +
      `--- last log lines ---\n${lastLogs || "(none)"}\n` +
      `--- stderr ---\n${stderr || "(empty)"}`,
  );
}

function inherited_env(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("POSTERN_")),
  );
}

function required(env: Record<string, string>, name: string): string {
  const value = env[name];
  if (value === undefined) throw new Error(`Cannot start the relay as ${name} is unset`);
  return value;
}

function random_token(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
