/**
 * DNS faults end to end, from a responder scripted per name: only a domain that does not exist or
 * publishes a null MX bounces; SERVFAIL, REFUSED and silence defer and are retried until DNS
 * recovers; MX hosts without addresses wait until the maximum age. No DNS-caused bounce or expiry
 * puts an address on the suppression list, neither the recipient's nor (through the DSN) the
 * sender's.
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { submit } from "./support/smtp_client.ts";
import { getMessage, type MessageView, waitForMessage } from "./support/relay_api.ts";
import { countTags } from "./support/operations.ts";

const MX = [{ exchange: "mx.ok.test", priority: 10 }];

Deno.test("only NXDOMAIN and a null MX bounce; SERVFAIL, REFUSED, silence and MX hosts without addresses defer; nothing DNS caused is suppressed", async () => {
  const sink = await startSink();
  const dns = await startDnsServer({
    mx: {
      "ok.test": MX,
      "servfail.test": MX,
      "refused.test": MX,
      "silent.test": MX,
      "nullmx.test": [{ exchange: ".", priority: 0 }],
      "noaddr.test": [{ exchange: "mx.noaddr.test", priority: 10 }],
    },
    a: { "mx.ok.test": ["127.0.0.1"] },
    txt: { "mx.noaddr.test": ["a name with no address"] },
    faults: {
      "servfail.test": "servfail",
      "refused.test": "refused",
      "silent.test": "drop",
      // The sender's own domain fails too: the DSNs to it must wait, not bounce back.
      "origin.test": "servfail",
    },
  });
  const relay = await startRelay({
    env: {
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_DNS: `127.0.0.1:${dns.port}`,
      POSTERN_MX_PORT: String(sink.port),
      POSTERN_RETRY_SCHEDULE: "2s",
      POSTERN_MAX_AGE: "30s",
      // One expiry would suppress an address, were it not DNS that caused it.
      POSTERN_SUPPRESS_AFTER_EXPIRIES: "1",
    },
  });
  try {
    const domains = ["nx", "nullmx", "servfail", "refused", "silent", "noaddr", "ok"];
    const ids = await submit(
      relay,
      domains.map((d) => ({ from: "app@origin.test", to: `user@${d}.test`, tag: d })),
    );
    const id = Object.fromEntries(domains.map((d, i) => [d, ids[i]!]));
    const first = (m: MessageView) => m.recipients[0]!;
    const settled = (d: string, status: string) =>
      waitForMessage(relay, id[d]!, (m) => first(m).status === status, 40_000);

    for (const d of ["nx", "nullmx"]) {
      const m = await settled(d, "bounced");
      assert.equal(first(m).category, "bad_domain", d);
      assert.deepEqual(m.events.map((e) => e.type), ["accepted", "bounced"], `${d}: at once`);
    }
    assert.match(first(await getMessage(relay, id.nx!)).last_reply!, /NXDOMAIN/);
    assert.match(first(await getMessage(relay, id.nullmx!)).last_reply!, /null MX/);
    for (const d of ["servfail", "refused", "silent"]) {
      const m = await settled(d, "deferred");
      assert.equal(first(m).category, "other", d);
      assert.ok(first(m).next_attempt_at, `${d} is tried again`);
    }
    const noaddr = await settled("noaddr", "deferred");
    assert.equal(first(noaddr).category, "bad_domain");
    await settled("ok", "delivered");

    // DNS recovers: the deferred mail goes out on its next attempts.
    const zone = dns.zone;
    zone.faults = { "origin.test": "servfail", "mx.noaddr.test": "nxdomain" };
    for (const d of ["servfail", "refused", "silent"]) await settled(d, "delivered");
    assert.deepEqual(
      [...countTags(sink.messages)].filter(([tag]) => tag !== null).sort(),
      [["ok", 1], ["refused", 1], ["servfail", 1], ["silent", 1]],
    );

    // MX hosts that have no address (now NXDOMAIN) wait until the maximum age, then expire.
    const expired = await settled("noaddr", "bounced");
    assert.equal(first(expired).category, "expired");
    const deferrals = expired.events.filter((e) => e.type === "deferred");
    assert.ok(deferrals.length >= 2, `${deferrals.length} deferrals before the expiry`);
    assert.ok(deferrals.every((e) => e.category === "bad_domain"));

    // Nothing DNS caused is on the suppression list: neither recipients nor the sender, whose
    // DSNs are deferred by the same SERVFAIL.
    const list = await relay.api("/v1/suppressions");
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.data, []);
    const [again] = await submit(relay, [{ from: "app@other.test", to: "user@nx.test", tag: "2" }]);
    assert.notEqual(first(await getMessage(relay, again!)).status, "suppressed");
  } finally {
    await relay.stop();
    await sink.close();
    await dns.close();
  }
});
