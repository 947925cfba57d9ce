/**
 * Several nodes on one store deliver each message once: the node holding a destination site's
 * lease delivers its mail, whichever node accepted it. Bounded: at most 600 messages a test, and
 * every wait has a deadline.
 *
 * The store is a parameter: every test runs on each store in SHARED_STORES (tests/support/
 * cluster.ts: a KV file, and a KV Connect URL where a stand-in server is there).
 */
import assert from "node:assert/strict";
import type { Relay } from "./support/relay_process.ts";
import {
  clusterEnv,
  logsOf,
  SHARED_STORES,
  startDestinations,
  startNodes,
  submitTags,
} from "./support/cluster.ts";
import { waitUntil } from "./support/operations.ts";

interface NodeView {
  id: string;
  roles: string[];
  last_heartbeat: string;
  sites: { site: string; lease_until: string }[];
}

async function nodesSeenBy(relay: Relay): Promise<NodeView[]> {
  const res = await relay.api("/v1/nodes");
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json.data as NodeView[];
}

/** Every tag acknowledged arrived; then, once no node holds any site, nothing more comes. */
async function settle(
  nodes: Relay[],
  acked: string[],
  counts: () => Map<string, number>,
) {
  const missing = () => acked.filter((t) => !counts().has(t));
  await waitUntil(() => missing().length === 0, "every acknowledged message at its sink", {
    timeoutMs: 120_000,
    intervalMs: 200,
    detail: () => `${missing().length} of ${acked.length} missing, e.g. ${missing().slice(0, 5)}`,
  });
  // A node that kept a stale job in memory would send it once it got the lease, which may be
  // after the work looked done: wait until every site is let go, then a few polls more.
  const live = nodes.filter((n) => n.logs.every((l) => l.event !== "shutdown.done"));
  await waitUntil(
    async () => (await nodesSeenBy(live[0]!)).every((n) => n.sites.length === 0),
    "every site lease let go",
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  await new Promise((r) => setTimeout(r, 5_000));
}

function duplicates(counts: Map<string, number>): string[] {
  return [...counts].filter(([, c]) => c > 1).map(([tag, c]) => `${tag}×${c}`);
}

for (const store of SHARED_STORES) {
  for (const n of [2, 3]) {
    Deno.test(`${n} nodes on ${store.name} under load deliver every message exactly once`, async () => {
      const shared = await store.open();
      const dest = await startDestinations(4);
      const nodes = await startNodes(n, clusterEnv(shared, dest));
      try {
        // Every node after the first saw the ones before it and said so.
        for (const node of nodes.slice(1)) {
          await node.waitForLog((l) => l.event === "node.shared_store");
        }
        const perNode = 150;
        const acked = (await Promise.all(nodes.map((node, k) => {
          const tags = Array.from({ length: perNode }, (_, i) => `n${k}-${i}`);
          return submitTags(() => node.smtpPort, tags, (_, i) => dest.domains[i % 4]!);
        }))).flat();
        assert.equal(acked.length, n * perNode, "every submission got 250");
        await settle(nodes, acked, dest.counts);
        const counts = dest.counts();
        assert.deepEqual(duplicates(counts), [], "no message arrived twice");
        assert.equal(counts.size, acked.length, "nothing arrived that was not submitted");
        assert.deepEqual(logsOf(nodes, "delivery.record_conflict"), []);
        // Which node delivered for which site: the sites are spread by lease, not by intake.
        const bySite = new Map<string, Set<number>>();
        nodes.forEach((node, k) => {
          for (const l of node.logs.filter((l) => l.event === "delivery.attempt")) {
            const set = bySite.get(String(l.site)) ?? new Set();
            set.add(k);
            bySite.set(String(l.site), set);
          }
        });
        console.log(
          `${n} nodes, ${acked.length} messages: 0 lost, 0 duplicates; sites delivered by node ` +
            JSON.stringify([...bySite].map(([site, ks]) => [site.slice(-6), [...ks]])),
        );
      } finally {
        await Promise.all(nodes.map((node) => node[Symbol.asyncDispose]()));
        await dest.close();
        await shared.close();
      }
    });
  }

  Deno.test(`GET /v1/nodes on ${store.name} lists the live nodes, their roles, heartbeats and the sites each holds`, async () => {
    const shared = await store.open();
    const dest = await startDestinations(1);
    const env = clusterEnv(shared, dest);
    const [a] = await startNodes(1, env);
    const [b] = await startNodes(1, { ...env, POSTERN_ROLES: "smtp,worker" });
    try {
      const acked = await submitTags(() => a!.smtpPort, ["first"], () => dest.domains[0]!);
      assert.deepEqual(acked, ["first"]);
      let seen: NodeView[] = [];
      // While the site has work (a retry every second for a refusing sink) one node holds it.
      dest.sinks[0]!.setBehavior(`user@${dest.domains[0]}`, { code: 451, message: "4.7.1 later" });
      await submitTags(() => b!.smtpPort, ["second"], () => dest.domains[0]!);
      await waitUntil(
        async () => {
          seen = await nodesSeenBy(a!);
          return seen.length === 2 && seen.some((n) => n.sites.length === 1);
        },
        "both nodes listed, one holding the site",
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const byRoles = Object.fromEntries(seen.map((n) => [n.roles.join(","), n]));
      assert.ok(byRoles["smtp,http,worker"], JSON.stringify(seen));
      assert.ok(byRoles["smtp,worker"], JSON.stringify(seen));
      for (const node of seen) {
        assert.ok(Date.now() - Date.parse(node.last_heartbeat) < 20_000, node.last_heartbeat);
      }
      const holder = seen.find((n) => n.sites.length === 1)!;
      assert.match(holder.sites[0]!.site, /^route:/);
      // A credential key is not the admin: 403.
      const key = await a!.api("/v1/credentials", { body: { name: "app" } });
      const res = await a!.api("/v1/nodes", { token: key.json.password });
      assert.equal(res.status, 403);
      // A stopped node leaves the list at once (it removes its heartbeat).
      await b!.stop();
      const after = await nodesSeenBy(a!);
      assert.deepEqual(after.map((n) => n.roles.join(",")), ["smtp,http,worker"]);
    } finally {
      await a![Symbol.asyncDispose]();
      await b![Symbol.asyncDispose]();
      await dest.close();
      await shared.close();
    }
  });
}

for (const store of SHARED_STORES) {
  Deno.test(`3 nodes on ${store.name}, one killed -9 mid-run and restarted: nothing lost, duplicates only of its in-flight deliveries, its sites move within the lease TTL`, async () => {
    const CONNECTIONS = 2; // per site: at most this many of a site's deliveries are in flight
    const LEASE_TTL_MS = 10_000;
    const shared = await store.open();
    // Until the others run, every destination holds its reply to the final dot: the victim's
    // first deliveries stay in flight, so its sites have work and it keeps their leases.
    const gate = Promise.withResolvers<void>();
    const dest = await startDestinations(4, { dataGate: () => gate.promise });
    const env = clusterEnv(shared, dest, { POSTERN_CONNECTION_LIMIT: String(CONNECTIONS) });
    // The victim starts alone and takes every site before the others run. With them running,
    // a site was the victim's only if its lease commit beat their next poll of the queue
    // markers, which under load it did not always (one such run timed out here with the
    // survivors holding two of the four sites for the whole of the victim's load).
    const all = await startNodes(1, env);
    let victim = all[0]!;
    const nodes: Relay[] = [];
    try {
      const domainOf = (_: string, i: number) => dest.domains[i % 4]!;
      const victimLoad = submitTags(
        () => victim.smtpPort,
        Array.from({ length: 200 }, (_, i) => `c-${i}`),
        domainOf,
      );
      let held: NodeView["sites"] = [];
      await waitUntil(
        async () => {
          held = (await nodesSeenBy(victim)).find((n) => n.id === nodeId(victim))?.sites ?? [];
          return held.length === 4;
        },
        "the victim holding every site",
        { timeoutMs: 30_000, intervalMs: 100, detail: () => JSON.stringify(held) },
      );
      const others = await startNodes(2, env);
      all.push(...others);
      nodes.push(...others, victim);
      const othersLoad = Promise.all(
        nodes.slice(0, 2).map((node, k) =>
          submitTags(
            () => node.smtpPort,
            Array.from({ length: 150 }, (_, i) => `${k === 0 ? "a" : "b"}-${i}`),
            domainOf,
          )
        ),
      );
      gate.resolve();
      // Mid-run: the others have queued some, the victim delivers.
      await waitUntil(
        () => dest.counts().size >= 60,
        "some mail delivered before the kill",
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      const victimSites = (await nodesSeenBy(nodes[0]!))
        .find((n) => n.id === nodeId(victim))?.sites.map((s) => s.site) ?? [];
      const deliveredAtKill = dest.counts().size;
      await victim.kill9();
      const killedAt = Date.now();

      // Its sites move to the live nodes once its leases run out.
      const survivors = new Set(nodes.slice(0, 2).map(nodeId));
      await waitUntil(
        async () => {
          const holders = new Map<string, string>();
          for (const n of await nodesSeenBy(nodes[0]!)) {
            for (const s of n.sites) holders.set(s.site, n.id);
          }
          return victimSites.every((s) => survivors.has(holders.get(s) ?? ""));
        },
        "the victim's sites held by the survivors",
        {
          timeoutMs: LEASE_TTL_MS + 30_000,
          intervalMs: 100,
        },
      );
      const takeoverMs = Date.now() - killedAt;

      victim = await victim.restart();
      all.push(victim);
      const acked = [...(await victimLoad), ...(await othersLoad).flat()];
      await settle([nodes[0]!, nodes[1]!, victim], acked, dest.counts);

      const counts = dest.counts();
      const lost = acked.filter((t) => !counts.has(t));
      const dups = duplicates(counts);
      const bound = victimSites.length * CONNECTIONS;
      console.log(
        `3 nodes, kill -9 of one holding ${victimSites.length} sites after ${deliveredAtKill} ` +
          `deliveries: ${acked.length} acknowledged, ${lost.length} lost, ${dups.length} ` +
          `duplicates (bound ${bound}: its sites × ${CONNECTIONS} connections) ${
            dups.join(" ")
          }; ` +
          `lease take-over ${takeoverMs} ms (lease TTL ${LEASE_TTL_MS} ms)`,
      );
      assert.deepEqual(lost, [], "every acknowledged message arrived");
      assert.ok(dups.length <= bound, `${dups.length} duplicates > ${bound}`);
      assert.ok(
        takeoverMs <= LEASE_TTL_MS + 5_000,
        `the sites moved ${takeoverMs} ms after the kill`,
      );
      assert.ok(acked.length >= 300, `only ${acked.length} acknowledged`);
    } finally {
      gate.resolve();
      await Promise.all(all.map((node) => node[Symbol.asyncDispose]()));
      await dest.close();
      await shared.close();
    }
  });
}

/** A node's id, from its ready line. */
function nodeId(relay: Relay): string {
  return String(relay.logs.find((l) => l.event === "ready")?.node);
}
