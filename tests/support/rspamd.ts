/**
 * A real rspamd (Debian's `rspamd` package) for the content filtering tests: one normal worker on
 * a free loopback port, run in the foreground from a config directory the test writes, with its
 * pid file, caches and log in a temp dir. No system service, no Redis, no controller. Modules
 * that would reach out (RBLs, SURBL, SPF, DKIM/DMARC lookups, fuzzy, maps over HTTP) are never
 * configured, so they stay off, and rspamd's resolver points at the test's own DNS responder, so
 * no name is ever looked up outside the machine.
 *
 * The rules are rspamd's stock regexp rules plus one multimap rule the test writes:
 * {@linkcode HOLD_PHRASE} in a text part scores {@linkcode HOLD_PHRASE_SCORE}, so a message can be
 * built to land between two thresholds.
 *
 * @module
 */
import { freePort } from "./free_port.ts";

export const HOLD_PHRASE = "hold this message please";
export const HOLD_PHRASE_SCORE = 8;
/** The GTUBE test string: rspamd rejects a message holding it at once. */
export const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

const RSPAMD = "/usr/bin/rspamd";

/** Why the rspamd tests cannot run here, or null when they can. */
export function rspamdMissing(): string | null {
  try {
    Deno.statSync(RSPAMD);
    return null;
  } catch {
    return `rspamd is not installed (${RSPAMD} missing; apt-get install rspamd, as .ci/run does)`;
  }
}

export interface Rspamd {
  port: number;
  /** POSTERN_RSPAMD_URL for it. */
  url: string;
  dir: string;
  /** rspamd's own log: one line per scan with the envelope it was given. */
  log(): Promise<string>;
  /** SIGTERM to the main process; resolves when it has exited. */
  stop(): Promise<void>;
  /** SIGTERM at once, without waiting: for an `unload` handler, which cannot await. */
  signalStop(): void;
}

function config(dir: string, port: number, dnsPort: number): string {
  return `
options {
  pidfile = "${dir}/rspamd.pid";
  # C modules: regexp only (no chartable/dkim/fuzzy_check).
  filters = "regexp";
  dns { nameserver = ["127.0.0.1:${dnsPort}"]; timeout = 1s; retransmits = 1; }
  control_socket = "${dir}/rspamd.sock mode=0600";
  cache_file = "${dir}/symbols.cache";
  hs_cache_dir = "${dir}/";
  dynamic_conf = "${dir}/rspamd_dynamic";
  history_file = "${dir}/rspamd.history";
  stats_file = "${dir}/stats.ucl";
  tempdir = "${dir}";
  url_tld = "\${SHAREDIR}/effective_tld_names.dat";
  task_timeout = 20s;
}
logging { type = "file"; filename = "${dir}/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "127.0.0.1:${port}"; count = 1; }
actions { reject = 15; add_header = 6; greylist = 4; }
lua = "\${RULESDIR}/rspamd.lua";
modules { path = "\${PLUGINSDIR}"; }
multimap {
  POSTERN_TEST_HOLD {
    type = "content";
    filter = "text";
    regexp = true;
    map = "${dir}/hold.map";
    score = ${HOLD_PHRASE_SCORE}.0;
    description = "The test's hold phrase";
  }
}
`;
}

/** Tries at a port that another process took between freePort() and rspamd's bind. */
const PORT_TRIES = 3;

class PortTaken extends Error {}

/** Starts rspamd and resolves once its worker answers /ping (startup can take tens of seconds). */
export async function startRspamd(options: { dnsPort: number }): Promise<Rspamd> {
  // freePort() only says the port was free a moment ago: a client socket of a parallel test may
  // take it as its local port before rspamd binds (seen in CI: EADDRINUSE). Another port then.
  for (let tries = 1;; tries++) {
    try {
      return await startRspamdAt(await freePort(), options);
    } catch (err) {
      if (!(err instanceof PortTaken) || tries >= PORT_TRIES) throw err;
    }
  }
}

async function startRspamdAt(port: number, options: { dnsPort: number }): Promise<Rspamd> {
  const dir = await Deno.makeTempDir({ prefix: "postern_rspamd_" });
  await Deno.writeTextFile(`${dir}/hold.map`, `/${HOLD_PHRASE}/i\n`);
  await Deno.writeTextFile(`${dir}/rspamd.conf`, config(dir, port, options.dnsPort));
  const asRoot = Deno.uid() === 0;
  const child = new Deno.Command(RSPAMD, {
    args: [
      "-f",
      "-c",
      `${dir}/rspamd.conf`,
      // As root, rspamd would switch to its system user; it runs as root here, in a temp dir.
      ...(asRoot ? ["-i", "-u", "root", "-g", "root"] : []),
    ],
    // Not piped: a pipe whose reader is gone (the test process exiting) would kill rspamd's
    // main process with SIGPIPE mid-shutdown and orphan its worker. Its log file says it all.
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const logTail = async () =>
    (await Deno.readTextFile(`${dir}/rspamd.log`).catch(() => "(no log)")).slice(-2000);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited) {
      const tail = await logTail();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const Failure = /bind 127\.0\.0\.1:\d+ failed: 98\b/.test(tail) ? PortTaken : Error;
      throw new Failure(`rspamd exited during startup: ${tail}`);
    }
    try {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`rspamd did not answer /ping within 180 s: ${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  let stopped: Promise<void> | null = null;
  return {
    port,
    url,
    dir,
    log: () => Deno.readTextFile(`${dir}/rspamd.log`),
    signalStop() {
      if (!exited) child.kill("SIGTERM");
    },
    stop() {
      stopped ??= (async () => {
        if (!exited) child.kill("SIGTERM");
        await status;
      })();
      return stopped;
    },
  };
}
