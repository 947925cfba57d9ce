/**
 * Several relay processes on one store, for the multi-node tests: the store is a parameter (a
 * KV file every node opens, or a KV Connect URL), each node has its own data dir (node id,
 * certificate), and a few recipient domains each route to their own counting sink, so each is
 * its own destination site and the sites spread over the nodes.
 *
 * @module
 */
import { startStandinProcess } from "./kv_connect_standin.ts";
import { type Relay, startRelay } from "./relay_process.ts";
import { type Sink, type SinkOptions, startSink } from "./sink.ts";
import { SmtpClient } from "./smtp_client.ts";
import { countTags, taggedMessage } from "./operations.ts";

/** Where the nodes keep their shared state, and what an http-only node may write for it. */
export interface SharedStore {
  name: string;
  /** POSTERN_KV (and DENO_KV_ACCESS_TOKEN for a remote store). */
  env: Record<string, string>;
  /** Files a node must be allowed to write to open the store (a local KV file and companions). */
  files: string[];
  close(): Promise<void>;
}

/** A KV file in a fresh temp dir. */
export async function fileStore(): Promise<SharedStore> {
  const dir = await Deno.makeTempDir({ prefix: "postern_store_" });
  const path = `${dir}/shared.kv`;
  return {
    name: "one KV file",
    env: { POSTERN_KV: path },
    files: [path, `${path}-wal`, `${path}-shm`],
    close: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/** Every kind of store the multi-node tests run on: a shared KV file and KV Connect. */
export const SHARED_STORES: { name: string; open: () => Promise<SharedStore> }[] = [
  { name: "a KV file", open: fileStore },
  { name: "KV Connect (a stand-in for denokv)", open: kvConnectStore },
];

/**
 * A KV Connect server on loopback, in a process of its own (the stand-in for denokv), backed by
 * a KV file in a fresh temp dir.
 */
export async function kvConnectStore(): Promise<SharedStore> {
  const dir = await Deno.makeTempDir({ prefix: "postern_standin_" });
  const token = "standin-token-0123456789abcdef";
  const standin = await startStandinProcess({ path: `${dir}/standin.kv`, token });
  return {
    name: "KV Connect (a stand-in for denokv)",
    env: { POSTERN_KV: standin.url, DENO_KV_ACCESS_TOKEN: token },
    files: [],
    close: async () => {
      await standin[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Deno's write permission for a node that may write nothing but the store's files. */
export function storeWriteFlag(store: SharedStore): string {
  return store.files.length > 0 ? `--allow-write=${store.files.join(",")}` : "--deny-write";
}

/** Recipient domains, each routed to its own sink. */
export interface Destinations {
  domains: string[];
  sinks: Sink[];
  /** POSTERN_ROUTES for them. */
  routes: string;
  /** How many copies of each tag arrived, over all sinks. */
  counts(): Map<string, number>;
  close(): Promise<void>;
}

/** `count` destinations; `sink` adds to each sink's options (a `dataGate`, say). */
export async function startDestinations(
  count: number,
  sink: Omit<SinkOptions, "tls"> = {},
): Promise<Destinations> {
  const domains = Array.from({ length: count }, (_, i) => `d${i}.test`);
  const sinks = await Promise.all(domains.map(() => startSink({ ...sink, tls: "none" })));
  return {
    domains,
    sinks,
    routes: domains.map((d, i) => `${d}=127.0.0.1:${sinks[i]!.port}`).join(","),
    counts: () => countTags(sinks.flatMap((s) => s.messages)),
    close: async () => {
      await Promise.all(sinks.map((s) => s.close()));
    },
  };
}

/** The secret key every node of a test cluster shares. */
export const CLUSTER_SECRET_KEY = "cluster-secret-key-0123456789abcdef-0123";

/** The settings every node of a test cluster shares. */
export function clusterEnv(
  store: Pick<SharedStore, "env">,
  destinations: Destinations,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...store.env,
    POSTERN_ROUTES: destinations.routes,
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    POSTERN_RETRY_SCHEDULE: "1s",
    POSTERN_POLL_INTERVAL: "500ms",
    POSTERN_CONNECT_TIMEOUT: "2s",
    POSTERN_LEASE_TTL: "10s",
    // One admin token for all: the API of any node answers the test.
    POSTERN_ADMIN_TOKEN: "cluster-admin-token-0123456789abcdef",
    // Every node on a store seals and opens its secrets under the same key.
    POSTERN_SECRET_KEY: CLUSTER_SECRET_KEY,
    ...extra,
  };
}

/** Starts `n` nodes on the store, one after another (each with its own data dir). */
export async function startNodes(n: number, env: Record<string, string>): Promise<Relay[]> {
  const nodes: Relay[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startRelay({ env }));
  return nodes;
}

/**
 * Submits `tags` to a node over trusted-network SMTP sessions, each to a domain picked by
 * `domainOf`; a session the node drops (a kill) is reopened until `stopped()`. Returns the tags
 * that got 250.
 */
export async function submitTags(
  port: () => number,
  tags: string[],
  domainOf: (tag: string, i: number) => string,
  stopped: () => boolean = () => false,
): Promise<string[]> {
  const acked: string[] = [];
  let i = 0;
  let sending = false;
  while (i < tags.length && !stopped()) {
    let client: SmtpClient | undefined;
    sending = false;
    try {
      client = await SmtpClient.open(port());
      await client.hello();
      for (; i < tags.length && !stopped(); i++) {
        const tag = tags[i]!;
        const to = `user@${domainOf(tag, i)}`;
        sending = true;
        const reply = await client.send("app@origin.test", to, taggedMessage(tag, { to }));
        sending = false;
        if (reply.code === 250) acked.push(tag);
      }
    } catch {
      // The node went away: the message being sent is neither acknowledged nor sent again.
      if (sending) i++;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      client?.close();
    }
  }
  return acked;
}

/** Log lines of all nodes (current and earlier processes) with this event. */
export function logsOf(nodes: Relay[], event: string): Record<string, unknown>[] {
  return nodes.flatMap((n) => n.logs.filter((l) => l.event === event));
}
