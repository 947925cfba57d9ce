/**
 * The relay-with-sinks set-up most end-to-end tests share: receiving servers on loopback, the
 * relay process routing every domain to the first of them, an optional config file and
 * credential, all torn down by `await using`; and waits on the relay's API.
 *
 * @module
 */
import { type Relay, type RelayOptions, startRelay } from "./relay_process.ts";
import { type Sink, type SinkOptions, startSink } from "./sink.ts";
import { type Issued, newCredential } from "./tenants.ts";

/** Writes `config` as the relay's POSTERN_CONFIG file; returns its path. */
export async function writeConfig(config: unknown): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "postern_cfg_" });
  const path = `${dir}/postern.json`;
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
  return path;
}

export interface RelayWithSinksOptions {
  /** One sink is started per entry; every domain is routed to the first. @default [{}] */
  sinks?: SinkOptions[];
  /**
   * `POSTERN_*` variables on top of the defaults (routes to the first sink, 127.0.0.1 trusted,
   * a 200 ms poll interval); a function is given the sinks started.
   */
  env?: Record<string, string> | ((sinks: Sink[]) => Record<string, string>);
  /** Written to a file the relay reads as POSTERN_CONFIG. */
  config?: unknown;
  /** Whether 127.0.0.1 is a trusted network, so SMTP needs no AUTH. @default true */
  trusted?: boolean;
  /** A credential is issued with this body (`{}` for the defaults). */
  credential?: Record<string, unknown>;
  /** The rest of startRelay's options. */
  relay?: Omit<RelayOptions, "env">;
}

/** What {@linkcode startRelayWithSinks} started; `await using` stops and removes all of it. */
export interface RelayWithSinks extends AsyncDisposable {
  /** The relay now running (a test that restarts it puts the new one here). */
  relay: Relay;
  /** The first sink. */
  sink: Sink;
  sinks: Sink[];
  /** Present when `credential` was asked for. */
  credential: Issued | undefined;
}

/** Starts the sinks, then the relay routed to them, then issues the credential if asked. */
export async function startRelayWithSinks(
  options: RelayWithSinksOptions = {},
): Promise<RelayWithSinks> {
  const sinks: Sink[] = [];
  let configDir: string | undefined;
  let relay: Relay | undefined;
  const dispose = async () => {
    await relay?.[Symbol.asyncDispose]();
    await Promise.all(sinks.map((s) => s.close()));
    if (configDir) await Deno.remove(configDir, { recursive: true }).catch(() => {});
  };
  try {
    for (const sinkOptions of options.sinks ?? [{}]) sinks.push(await startSink(sinkOptions));
    const env: Record<string, string> = {
      POSTERN_ROUTES: `*=127.0.0.1:${sinks[0]!.port}`,
      POSTERN_POLL_INTERVAL: "200ms",
      ...(options.trusted ?? true ? { POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32" } : {}),
    };
    if (options.config !== undefined) {
      env.POSTERN_CONFIG = await writeConfig(options.config);
      configDir = env.POSTERN_CONFIG.replace(/\/[^/]+$/, "");
    }
    const extra = typeof options.env === "function" ? options.env(sinks) : options.env;
    relay = await startRelay({ ...options.relay, env: { ...env, ...extra } });
    const credential = options.credential
      ? await newCredential(relay, options.credential)
      : undefined;
    const fixture: RelayWithSinks = {
      relay,
      sink: sinks[0]!,
      sinks,
      credential,
      async [Symbol.asyncDispose]() {
        relay = fixture.relay;
        await dispose();
      },
    };
    return fixture;
  } catch (error) {
    await dispose();
    throw error;
  }
}

/**
 * Polls `fn` every `intervalMs` until it returns a value that is not undefined (a throw counts as
 * not yet); rejects after `timeoutMs` with the last error.
 */
export async function eventually<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Cannot see ${what} within ${timeoutMs} ms${last ? `: last error ${last}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `GET /v1/queue` until a site matching `pred` appears; returns it. */
export function waitForSite(
  relay: Relay,
  // deno-lint-ignore no-explicit-any -- the API's JSON
  pred: (site: any) => boolean,
  what: string,
  timeoutMs?: number,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  return eventually(
    async () => {
      const res = await relay.api("/v1/queue");
      if (res.status !== 200) throw new Error(`GET /v1/queue answered ${res.status}`);
      // deno-lint-ignore no-explicit-any
      return (res.json.data as any[]).find(pred);
    },
    what,
    timeoutMs,
  );
}

/**
 * Resolves once no site holds queued mail (GET /v1/queue, counted fresh from the store per
 * site): every message accepted so far is delivered, bounced or dropped. The event a test
 * awaits before asserting that nothing more arrives. (The `postern_queue_depth` metric would
 * do too, but a scrape caches it for 10 s.)
 */
export function queueDrained(relay: Relay, timeoutMs?: number): Promise<true> {
  return eventually(
    async () => {
      const res = await relay.api("/v1/queue");
      if (res.status !== 200) throw new Error(`GET /v1/queue answered ${res.status}`);
      // deno-lint-ignore no-explicit-any -- the API's JSON
      const busy = (res.json.data as any[]).filter((s) => s.depth > 0);
      if (busy.length > 0) throw new Error(`still queued: ${JSON.stringify(busy)}`);
      return true as const;
    },
    "an empty queue",
    timeoutMs,
  );
}
