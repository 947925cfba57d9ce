/**
 * Limits that hold across the nodes sharing a store: a credential's rate_limit, and the lockouts
 * after failed SMTP AUTH and failed HTTP keys. A sender or guesser who spreads its attempts over
 * two nodes gets no more than from one.
 */
import assert from "node:assert/strict";
import type { Relay } from "./support/relay_process.ts";
import {
  clusterEnv,
  SHARED_STORES,
  type SharedStore,
  startDestinations,
  startNodes,
} from "./support/cluster.ts";
import { login, message, newCredential, send, session } from "./support/tenants.ts";

async function twoNodes(store: SharedStore, extra: Record<string, string> = {}) {
  const dest = await startDestinations(1);
  const nodes = await startNodes(
    2,
    clusterEnv(store, dest, { POSTERN_AUTH_FAILURE_DELAY: "10ms", ...extra }),
  );
  return {
    nodes: nodes as [Relay, Relay],
    to: `user@${dest.domains[0]}`,
    async [Symbol.asyncDispose]() {
      await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
      await dest.close();
    },
  };
}

for (const store of SHARED_STORES) {
  Deno.test(`on ${store.name}, a credential's rate_limit holds across two nodes: sends alternated between them stop at the limit on both`, async () => {
    const shared = await store.open();
    try {
      await using cluster = await twoNodes(shared);
      const [a, b] = cluster.nodes;
      const rated = await newCredential(a, { name: "rated", rate_limit: "4/min" });
      const clients = [await session(a, rated), await session(b, rated)];
      const data = message({ from: "app@example.test", to: cluster.to });
      for (let i = 0; i < 4; i++) {
        const reply = await send(clients[i % 2]!, "app@example.test", data, [cluster.to]);
        assert.equal(reply.code, 250, `send ${i} on node ${i % 2}: ${reply.raw}`);
      }
      // Two each: per node, neither is near 4; together they are at it.
      for (const client of clients) {
        const over = await client.command("MAIL FROM:<app@example.test>");
        assert.match(over.raw, /^451 4\.7\.0 /);
        await client.quit();
      }
    } finally {
      await shared.close();
    }
  });

  Deno.test(`on ${store.name}, failed SMTP AUTH spread over two nodes locks the client on both after the limit in all`, async () => {
    const shared = await store.open();
    try {
      await using cluster = await twoNodes(shared, { POSTERN_AUTH_FAILURE_LIMIT: "4" });
      const [a, b] = cluster.nodes;
      const good = await newCredential(a, { name: "victim" });
      // Two wrong passwords on each node: 4 in all, 2 per node.
      for (let i = 0; i < 4; i++) {
        const { client, reply } = await login(i % 2 ? b : a, good.username, `wrong-${i}`);
        assert.match(reply.raw, /^535 /, `attempt ${i}: ${reply.raw}`);
        await client.quit().catch(() => {});
      }
      // Even the right password is refused unheard now, on either node.
      for (const node of [a, b]) {
        const { client, reply } = await login(node, good.username, good.password);
        assert.match(reply.raw, /^(421|454) 4\.7\.0 /, reply.raw);
        await client.quit().catch(() => {});
      }
      // The node that saw only two failures locked the client. (Its log line reaches us through
      // a pipe, the reply through a socket: the line is awaited, not looked for at once.)
      await b.waitForLog((l) => l.event === "smtp.auth_locked");
    } finally {
      await shared.close();
    }
  });

  Deno.test(`on ${store.name}, wrong HTTP keys spread over two nodes lock the client out of both`, async () => {
    const shared = await store.open();
    try {
      await using cluster = await twoNodes(shared, { POSTERN_AUTH_FAILURE_LIMIT: "4" });
      const [a, b] = cluster.nodes;
      const wrong = () => `pst_${"0".repeat(16)}_${crypto.randomUUID().replaceAll("-", "")}`;
      for (let i = 0; i < 4; i++) {
        const res = await (i % 2 ? b : a).api("/v1/credentials", { token: wrong() });
        assert.equal(res.status, 401, `attempt ${i}`);
      }
      for (const node of [a, b]) {
        const res = await node.api("/v1/credentials");
        assert.equal(res.status, 429, "locked, even with the admin token");
      }
    } finally {
      await shared.close();
    }
  });
}
