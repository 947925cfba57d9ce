/**
 * The node-wide outbound connection cap: many recipient domains whose MX names differ (so each
 * is its own site, with its own window) but all resolve to one receiving address must not open
 * more connections to it, together, than POSTERN_OUTBOUND_MAX_CONNECTIONS.
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { submit } from "./support/smtp_client.ts";
import { countTags } from "./support/operations.ts";

/**
 * The most sessions open at once. The relay closes its side before it opens the next connection,
 * but the sink hears of the close a moment after (the FIN is read after the next SYN is
 * accepted), so a session that ends within HANDOVER_MS of another's start does not overlap it.
 */
const HANDOVER_MS = 20;
function mostAtOnce(spans: readonly { openedAt: number; closedAt?: number }[]): number {
  let most = 0;
  for (const s of spans) {
    const open = spans.filter((o) =>
      o.openedAt <= s.openedAt &&
      (o.closedAt === undefined || o.closedAt > s.openedAt + HANDOVER_MS)
    ).length;
    most = Math.max(most, open);
  }
  return most;
}

Deno.test("domains on 24 different MX sets sharing one address never hold more than POSTERN_OUTBOUND_MAX_CONNECTIONS connections to it at once", async () => {
  const domains = Array.from({ length: 24 }, (_, i) => `d${i}.test`);
  // Each transaction is held a moment, so connections overlap as much as the relay allows.
  const sink = await startSink({ dataGate: () => new Promise((r) => setTimeout(r, 150)) });
  const dns = await startDnsServer({
    mx: Object.fromEntries(domains.map((d) => [d, [{ exchange: `mx.${d}`, priority: 10 }]])),
    a: Object.fromEntries(domains.map((d) => [`mx.${d}`, ["127.0.0.1"]])),
  });
  const relay = await startRelay({
    env: {
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(sink.port),
      POSTERN_OUTBOUND_MAX_CONNECTIONS: "3",
      POSTERN_RETRY_SCHEDULE: "1h",
    },
  });
  try {
    const messages = domains.flatMap((d) =>
      [0, 1].map((n) => ({ from: "app@origin.test", to: `u${n}@${d}`, tag: `${d}-${n}` }))
    );
    await submit(relay, messages);
    await sink.waitFor(messages.length, { timeoutMs: 60_000 });
    const most = mostAtOnce(sink.connectionSpans);
    assert.ok(most <= 3, `${most} connections at once`);
    assert.ok(most >= 2, "the cap, not something else, was the limit");
    const counts = countTags(sink.messages);
    assert.equal(counts.size, messages.length);
    assert.ok([...counts.values()].every((n) => n === 1), "each message once");
  } finally {
    await relay.stop();
    await sink.close();
    await dns.close();
  }
});
