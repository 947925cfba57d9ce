import assert from "node:assert/strict";
import { dnsResolver, resolveMx } from "./mx.ts";
import { startDnsServer } from "../../tests/support/dns_server.ts";

Deno.test("resolveMx() bounces only NXDOMAIN and null MX; every other DNS trouble defers", async () => {
  const dns = await startDnsServer({
    mx: {
      "ok.test": [{ exchange: "mx.ok.test", priority: 10 }],
      "nullmx.test": [{ exchange: ".", priority: 0 }],
      "servfail.test": [],
      "mx-nx.test": [{ exchange: "gone.mx.test", priority: 10 }],
      "mx-nodata.test": [{ exchange: "mx.nodata.test", priority: 10 }],
      "mx-servfail.test": [{ exchange: "mx.sf.test", priority: 10 }],
      "two.test": [
        { exchange: "mx.sf.test", priority: 10 },
        { exchange: "mx.ok.test", priority: 20 },
      ],
    },
    a: { "mx.ok.test": ["127.0.0.1"], "implicit.test": ["127.0.0.2"], "mx.sf.test": [] },
    txt: { "mx.nodata.test": ["no address here"], "noaddr.test": ["nothing"] },
    faults: {
      "servfail.test": "servfail",
      "refused.test": "refused",
      "dropped.test": "drop",
      "truncated.test": "truncated",
      "malformed.test": "malformed",
      "mx.sf.test A": "servfail",
    },
  });
  const resolver = dnsResolver({ ipAddr: "127.0.0.1", port: dns.port }, { timeoutMs: 300 });
  try {
    const verdict = async (domain: string) => {
      const r = await resolveMx(resolver, domain);
      return r.ok ? r.hosts.map((h) => `${h.name}=${h.address}`).join(",") : r.failure;
    };
    const cases: Array<[string, string, string]> = [
      ["ok.test", "mx.ok.test=127.0.0.1", "MX hosts with addresses"],
      ["implicit.test", "implicit.test=127.0.0.2", "no MX (NODATA): the domain's own A"],
      ["nx.test", "nxdomain", "a domain that does not exist"],
      ["nullmx.test", "null_mx", "a null MX (RFC 7505)"],
      ["servfail.test", "temporary", "SERVFAIL"],
      ["refused.test", "temporary", "REFUSED"],
      ["dropped.test", "temporary", "no answer at all"],
      ["truncated.test", "temporary", "a truncated answer that TCP cannot complete"],
      ["malformed.test", "temporary", "an answer that is no DNS message"],
      ["mx-nx.test", "no_address", "an MX host that does not exist"],
      ["mx-nodata.test", "no_address", "an MX host without A or AAAA"],
      ["noaddr.test", "no_address", "no MX and no address"],
      ["mx-servfail.test", "temporary", "an MX host whose address lookup fails"],
      ["two.test", "mx.ok.test=127.0.0.1", "a failing MX host beside a working one"],
    ];
    for (const [domain, want, says] of cases) {
      assert.equal(await verdict(domain), want, `${domain}: ${says}`);
    }
    const permanent = [];
    for (const [domain] of cases) {
      const r = await resolveMx(resolver, domain);
      if (!r.ok && r.permanent) permanent.push(domain);
    }
    assert.deepEqual(permanent, ["nx.test", "nullmx.test"]);
  } finally {
    await dns.close();
  }
});
