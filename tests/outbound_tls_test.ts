/**
 * Outbound TLS that can be trusted, end to end against the relay process: TLS levels per route
 * and profile, a smarthost that logs in only to a verified peer, MTA-STS (RFC 8461) with a
 * policy server on loopback, DANE (RFC 7672) with TLSA answers and the AD bit from the test's
 * DNS responder, and TLS reports (RFC 8460). Certificates come from a CA the test makes.
 */
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { Buffer } from "node:buffer";
import https from "node:https";
import { freePort, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { createTestCa, selfSignedCertificate } from "./support/test_ca.ts";
import { startMtaStsServer, stsPolicy } from "./support/mta_sts_server.ts";
import { submit } from "./support/smtp_client.ts";
import { writeConfig } from "./support/relay_fixture.ts";
import { type MessageView, waitForStatus } from "./support/relay_api.ts";

const PASSWORD = "upstream-secret-9f2c";
const AUTH = { user: "postern", pass: PASSWORD };

/** Waits until the message's recipient is deferred, and returns that recipient's view. */
async function deferred(relay: Parameters<typeof waitForStatus>[0], id: string) {
  const view = await waitForStatus(relay, id, "deferred", 30_000);
  return view.recipients[0]!;
}

/** The TLS facts of the message's delivery event. */
function deliveredTls(view: MessageView) {
  // deno-lint-ignore no-explicit-any
  const event = view.events.find((e) => e.type === "delivered") as any;
  assert.ok(event, `a delivered event in ${JSON.stringify(view.events)}`);
  return { tls: event.tls as string | null, details: event.tls_details ?? null };
}

function spkiSha256(certPem: string): string {
  const cert = new X509Certificate(certPem);
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

function certSha256(certPem: string): string {
  return createHash("sha256").update(new X509Certificate(certPem).raw).digest("hex");
}

async function closeAll(sinks: Sink[]) {
  await Promise.all(sinks.map((s) => s.close()));
}

Deno.test("a smarthost route with AUTH never sends its password to a peer whose certificate does not verify", async () => {
  const ca = await createTestCa();
  const name = "smarthost.test";
  const good = await startSink({ certificate: await ca.issue([name]), auth: AUTH });
  const implicit = await startSink({
    tls: "implicit",
    certificate: await ca.issue([name]),
    auth: AUTH,
  });
  const wrongName = await startSink({ certificate: await ca.issue(["other.test"]), auth: AUTH });
  const expired = await startSink({
    certificate: await ca.issue([name], { expired: true }),
    auth: AUTH,
  });
  const selfSigned = await startSink({
    certificate: await selfSignedCertificate([name]),
    auth: AUTH,
  });
  const optIn = await startSink({ certificate: await selfSignedCertificate([name]), auth: AUTH });
  const sinks = [good, implicit, wrongName, expired, selfSigned, optIn];
  const dns = await startDnsServer({ a: { [name]: ["127.0.0.1"] } });
  const route = (sink: Sink, extra: Record<string, unknown> = {}) => ({
    hosts: [`${name}:${sink.port}`],
    auth: AUTH,
    ...extra,
  });
  const config = await writeConfig({
    routes: {
      "good.test": route(good),
      "implicit.test": { hosts: [`smtps://${name}:${implicit.port}`], auth: AUTH },
      "wrong-name.test": route(wrongName),
      "expired.test": route(expired),
      "self-signed.test": route(selfSigned),
      // The route's own settings may accept any certificate: explicit, so allowed.
      "opt-in.test": route(optIn, { tls: "encrypt" }),
    },
  });
  try {
    await using relay = await startRelay({
      env: {
        POSTERN_CONFIG: config,
        POSTERN_DNS: `127.0.0.1:${dns.port}`,
        POSTERN_CA_FILE: ca.file,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      },
    });
    const domains = ["good", "implicit", "wrong-name", "expired", "self-signed", "opt-in"];
    const ids = await submit(
      relay,
      domains.map((d) => ({ from: "app@origin.test", to: `user@${d}.test`, tag: d })),
    );
    const byDomain = Object.fromEntries(domains.map((d, i) => [d, ids[i]!]));

    const delivered = await waitForStatus(relay, byDomain["good"]!, "delivered", 30_000);
    assert.deepEqual(deliveredTls(delivered).details?.verified_by, "ca");
    assert.equal(deliveredTls(delivered).details?.verified, true);
    assert.equal(good.authAttempts.length, 1);
    assert.equal(good.authAttempts[0]!.secure, true);

    const viaSmtps = await waitForStatus(relay, byDomain["implicit"]!, "delivered", 30_000);
    assert.equal(deliveredTls(viaSmtps).details?.verified_by, "ca");
    assert.equal(implicit.messages[0]!.secure, true);

    for (
      const [domain, sink] of [
        ["wrong-name", wrongName],
        ["expired", expired],
        ["self-signed", selfSigned],
      ] as const
    ) {
      const rcpt = await deferred(relay, byDomain[domain]!);
      assert.equal(rcpt.category, "tls_failure", `${domain}: ${JSON.stringify(rcpt)}`);
      assert.equal(sink.authAttempts.length, 0, `${domain}: the password was never sent`);
      assert.equal(sink.messages.length, 0);
    }

    const optedIn = await waitForStatus(relay, byDomain["opt-in"]!, "delivered", 30_000);
    assert.equal(deliveredTls(optedIn).details?.verified, false);
    assert.equal(optIn.authAttempts.length, 1);
    assert.ok(!relay.logs.some((l) => JSON.stringify(l).includes(PASSWORD)), "never logged");
  } finally {
    await closeAll(sinks);
    await dns.close();
  }
});

Deno.test("each TLS level holds against good and bad certificates: none, may, encrypt, verify, and a profile's level", async () => {
  const ca = await createTestCa();
  const name = "next-hop.test";
  const selfSigned = await startSink({ certificate: await selfSignedCertificate([name]) });
  const plain = await startSink({ tls: "none" });
  const good = await startSink({ certificate: await ca.issue([name]) });
  const expired = await startSink({ certificate: await ca.issue([name], { expired: true }) });
  const wrongName = await startSink({ certificate: await ca.issue(["other.test"]) });
  const sinks = [selfSigned, plain, good, expired, wrongName];
  const strict = "strict-hop.test";
  const dns = await startDnsServer({ a: { [name]: ["127.0.0.1"], [strict]: ["127.0.0.1"] } });
  const hop = (s: Sink) => `${name}:${s.port}`;
  const routes = [
    `may-self.test=${hop(selfSigned)}`,
    `encrypt-plain.test=${hop(plain)};tls=encrypt`,
    `encrypt-self.test=${hop(selfSigned)};tls=encrypt`,
    `verify-good.test=${hop(good)};tls=verify`,
    `verify-expired.test=${hop(expired)};tls=verify`,
    `verify-wrong.test=${hop(wrongName)};tls=verify`,
    `none.test=${hop(good)};tls=none`,
    `may-good.test=${hop(good)};tls=may`,
    `encrypt-good.test=${hop(good)};tls=encrypt`,
    // A profile's tls_level applies to a route without its own (and without AUTH).
    `profile-verify.test=${strict}:${selfSigned.port}`,
  ].join(",");
  const config = await writeConfig({
    shaping: { provider: { strict: { match: [strict], tls_level: "verify" } } },
  });
  try {
    await using relay = await startRelay({
      env: {
        POSTERN_ROUTES: routes,
        POSTERN_CONFIG: config,
        POSTERN_DNS: `127.0.0.1:${dns.port}`,
        POSTERN_CA_FILE: ca.file,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      },
    });
    const ids = await submit(relay, [
      { from: "app@origin.test", to: "a@may-self.test", tag: "may-self" },
      { from: "app@origin.test", to: "a@encrypt-plain.test", tag: "encrypt-plain" },
      { from: "app@origin.test", to: "a@encrypt-self.test", tag: "encrypt-self" },
      { from: "app@origin.test", to: "a@verify-good.test", tag: "verify-good" },
      { from: "app@origin.test", to: "a@verify-expired.test", tag: "verify-expired" },
      { from: "app@origin.test", to: "a@verify-wrong.test", tag: "verify-wrong" },
      { from: "app@origin.test", to: "a@none.test", tag: "none" },
      { from: "app@origin.test", to: "a@profile-verify.test", tag: "profile-verify" },
      { from: "app@origin.test", to: "a@may-good.test", tag: "may-good" },
      { from: "app@origin.test", to: "a@encrypt-good.test", tag: "encrypt-good" },
    ]);
    const [maySelf, encPlain, encSelf, verGood, verExpired, verWrong, none, profile] = ids;
    // A certificate that does verify is recorded as such at the opportunistic levels too.
    for (const goodId of ids.slice(8)) {
      const tls = deliveredTls(await waitForStatus(relay, goodId, "delivered", 30_000));
      assert.deepEqual([tls.details?.verified, tls.details?.verified_by], [true, "ca"]);
    }

    const may = deliveredTls(await waitForStatus(relay, maySelf!, "delivered", 30_000));
    assert.equal(may.details?.verified, false, "may: encrypted, not verified");
    assert.match(may.tls ?? "", /^TLSv1\.[23]$/);
    assert.ok(may.details?.cipher);

    assert.equal((await deferred(relay, encPlain!)).category, "tls_failure");
    assert.equal(plain.messages.length, 0, "encrypt never sends in clear");

    const enc = deliveredTls(await waitForStatus(relay, encSelf!, "delivered", 30_000));
    assert.equal(enc.details?.verified, false);

    const ver = deliveredTls(await waitForStatus(relay, verGood!, "delivered", 30_000));
    assert.deepEqual([ver.details?.verified, ver.details?.verified_by], [true, "ca"]);
    assert.equal((await deferred(relay, verExpired!)).category, "tls_failure");
    assert.equal(expired.messages.length, 0);
    assert.equal((await deferred(relay, verWrong!)).category, "tls_failure");
    assert.equal(wrongName.messages.length, 0);

    const clear = await waitForStatus(relay, none!, "delivered", 30_000);
    assert.equal(deliveredTls(clear).tls, null);
    assert.equal(good.messages.find((m) => m.text.includes("Body of none"))?.secure, false);

    assert.equal((await deferred(relay, profile!)).category, "tls_failure");
    assert.ok(!selfSigned.messages.some((m) => m.text.includes("Body of profile-verify")));
  } finally {
    await closeAll(sinks);
    await dns.close();
  }
});

/** The relay's settings for MX delivery on loopback: the test's DNS, MX port, policy server and CA. */
function mxDeliveryEnv(
  parts: { dns: { port: number }; mxPort: number; policyServer: { port: number }; caFile: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    POSTERN_DNS: `127.0.0.1:${parts.dns.port}`,
    POSTERN_MX_PORT: String(parts.mxPort),
    POSTERN_MTA_STS_PORT: String(parts.policyServer.port),
    POSTERN_CA_FILE: parts.caFile,
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    ...extra,
  };
}

/** Sinks for MX hosts: each on its own loopback address, all on the relay's MX port. */
async function mxSinks(port: number, certs: Record<string, { key: string; cert: string } | null>) {
  const sinks: Record<string, Sink> = {};
  const a: Record<string, string[]> = {};
  let n = 2;
  for (const [host, certificate] of Object.entries(certs)) {
    const address = `127.0.0.${n++}`;
    sinks[host] = await startSink({
      host: address,
      port,
      ...(certificate ? { certificate } : { tls: "none" }),
    });
    a[host] = [address];
  }
  return { sinks, a };
}

Deno.test("MTA-STS: enforce delivers only to listed MX hosts with verified certificates, testing delivers and reports, and a failed fetch never blocks", async () => {
  const ca = await createTestCa();
  const mxPort = await freePort();
  const { sinks, a } = await mxSinks(mxPort, {
    "mx.sts-good.test": await ca.issue(["mx.sts-good.test"]),
    "mx.sts-bad.test": await selfSignedCertificate(["mx.sts-bad.test"]),
    "mx.sts-unlisted.test": await ca.issue(["mx.sts-unlisted.test"]),
    "mx.sts-expired.test": await ca.issue(["mx.sts-expired.test"], { expired: true }),
    "mx.sts-testing.test": await selfSignedCertificate(["mx.sts-testing.test"]),
    "mx.sts-nofetch.test": await selfSignedCertificate(["mx.sts-nofetch.test"]),
    "mx.plain.test": await selfSignedCertificate(["mx.plain.test"]),
  });
  const reportSink = await startSink({ tls: "none" });
  const domains = ["sts-good", "sts-bad", "sts-unlisted", "sts-expired", "sts-testing"];
  const policyServer = await startMtaStsServer(
    await ca.issue([...domains, "sts-nofetch"].map((d) => `mta-sts.${d}.test`)),
    {
      "sts-good.test": stsPolicy("enforce", ["mx.sts-good.test"]),
      "sts-bad.test": stsPolicy("enforce", ["mx.sts-bad.test"]),
      "sts-unlisted.test": stsPolicy("enforce", ["*.elsewhere.test"]),
      "sts-expired.test": stsPolicy("enforce", ["*.sts-expired.test"]),
      "sts-testing.test": stsPolicy("testing", ["mx.sts-testing.test"]),
      // sts-nofetch.test publishes the TXT record but the server has no policy (404).
    },
  );
  const mx: Record<string, { exchange: string; priority: number }[]> = {};
  const txt: Record<string, string[]> = {};
  for (const d of [...domains, "sts-nofetch", "plain"]) {
    mx[`${d}.test`] = [{ exchange: `mx.${d}.test`, priority: 10 }];
    if (d !== "plain") {
      txt[`_mta-sts.${d}.test`] = ["v=STSv1; id=20261205"];
      a[`mta-sts.${d}.test`] = ["127.0.0.1"];
    }
  }
  txt["_smtp._tls.sts-testing.test"] = ["v=TLSRPTv1; rua=mailto:tls-reports@reports.test"];
  const dns = await startDnsServer({ mx, a, txt });
  try {
    await using relay = await startRelay({
      env: mxDeliveryEnv({ dns, mxPort, policyServer, caFile: ca.file }, {
        POSTERN_ROUTES: `reports.test=127.0.0.1:${reportSink.port}`,
      }),
    });
    const all = [...domains, "sts-nofetch", "plain"];
    const ids = await submit(
      relay,
      all.map((d) => ({ from: "app@origin.test", to: `user@${d}.test`, tag: d })),
    );
    const id = Object.fromEntries(all.map((d, i) => [d, ids[i]!]));

    const good = deliveredTls(await waitForStatus(relay, id["sts-good"]!, "delivered", 30_000));
    assert.deepEqual([good.details?.verified, good.details?.verified_by], [true, "mta-sts"]);

    for (const d of ["sts-bad", "sts-unlisted", "sts-expired"]) {
      const rcpt = await deferred(relay, id[d]!);
      assert.equal(rcpt.category, "tls_failure", `${d}: ${JSON.stringify(rcpt)}`);
      assert.match(rcpt.last_reply ?? "", new RegExp(`MTA-STS policy of ${d}\\.test`), d);
      assert.equal(sinks[`mx.${d}.test`]!.messages.length, 0, `${d}: nothing delivered`);
    }
    assert.equal(sinks["mx.sts-unlisted.test"]!.connections, 0, "an unlisted MX is not even tried");

    // testing: delivered over whatever TLS the MX has; the failure goes into the report.
    const testing = await waitForStatus(relay, id["sts-testing"]!, "delivered", 30_000);
    assert.equal(deliveredTls(testing).details?.verified, false);
    // A policy that cannot be fetched, and no policy at all, never block delivery.
    await waitForStatus(relay, id["sts-nofetch"]!, "delivered", 30_000);
    await waitForStatus(relay, id["plain"]!, "delivered", 30_000);
    assert.ok(policyServer.requests.includes("mta-sts.sts-good.test"));

    const reports = await relay.api("/v1/tls-reports");
    assert.equal(reports.status, 200);
    // deno-lint-ignore no-explicit-any
    const byDomain = (d: string) => reports.json.data.find((r: any) => r.domain === d);
    const goodReport = byDomain("sts-good.test").policies[0];
    assert.equal(goodReport.policy_type, "sts");
    assert.equal(goodReport.successful_sessions, 1);
    const testingReport = byDomain("sts-testing.test").policies[0];
    assert.equal(testingReport.policy_type, "sts");
    assert.equal(testingReport.failed_sessions, 1);
    assert.equal(testingReport.failures[0].result_type, "certificate-not-trusted");
    assert.equal(testingReport.failures[0].receiving_mx_hostname, "mx.sts-testing.test");
    const badReport = byDomain("sts-bad.test").policies[0];
    assert.ok(badReport.failed_sessions >= 1);
    assert.equal(byDomain("plain.test").policies[0].policy_type, "no-policy-found");

    // The daily report, sent now: gzipped RFC 8460 JSON through the queue to the rua.
    const day = new Date().toISOString().slice(0, 10);
    const sent = await relay.api("/v1/tls-reports/send", { body: { day } });
    assert.equal(sent.status, 200, JSON.stringify(sent.json));
    assert.deepEqual(sent.json.data, [{
      domain: "sts-testing.test",
      to: "mailto:tls-reports@reports.test",
      ok: true,
    }]);
    const [mail] = await reportSink.waitFor(1, { timeoutMs: 30_000 });
    assert.deepEqual(mail!.to, ["tls-reports@reports.test"]);
    assert.match(mail!.headers, /^TLS-Report-Domain: sts-testing\.test$/m);
    assert.match(mail!.headers, /report-type="tlsrpt"/);
    const attachment = /Content-Type: application\/tlsrpt\+gzip[^]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+)/
      .exec(mail!.text);
    assert.ok(attachment, mail!.text);
    const json = JSON.parse(
      new TextDecoder().decode(gunzipSync(Buffer.from(attachment[1]!, "base64"))),
    );
    assert.equal(json.policies[0].policy["policy-type"], "sts");
    assert.equal(json.policies[0].policy["policy-domain"], "sts-testing.test");
    assert.equal(json.policies[0].summary["total-failure-session-count"], 1);
    assert.equal(json.policies[0]["failure-details"][0]["result-type"], "certificate-not-trusted");
    // Once per domain and day.
    const again = await relay.api("/v1/tls-reports/send", { body: { day } });
    assert.deepEqual(again.json.data, []);
  } finally {
    await closeAll([...Object.values(sinks), reportSink]);
    await policyServer.close();
    await dns.close();
  }
});

/** One POST an HTTPS report receiver got. */
interface ReceivedReport {
  method: string;
  path: string;
  host: string;
  contentType: string;
  body: Uint8Array;
}

/** A domain's https: rua endpoint on loopback, as RFC 8460 §5.4 reporting targets it: 201 to all. */
async function startReportReceiver(certificate: { key: string; cert: string }) {
  const requests: ReceivedReport[] = [];
  const server = https.createServer(certificate, (req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", () => {
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        host: String(req.headers.host ?? ""),
        contentType: String(req.headers["content-type"] ?? ""),
        body: new Uint8Array(Buffer.concat(chunks)),
      });
      res.writeHead(201).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

Deno.test("TLS reporting: the daily report for a domain with an https: rua is POSTed to it as gzipped RFC 8460 JSON", async () => {
  const ca = await createTestCa();
  const mxPort = await freePort();
  const domain = "rpt-https.test";
  const { sinks, a } = await mxSinks(mxPort, {
    [`mx.${domain}`]: await selfSignedCertificate([`mx.${domain}`]),
  });
  const receiverName = "tlsrpt.receiver.test";
  const receiver = await startReportReceiver(await ca.issue([receiverName]));
  const rua = `https://${receiverName}:${receiver.port}/report?from=postern`;
  const policyServer = await startMtaStsServer(await ca.issue([`mta-sts.${domain}`]), {
    [domain]: stsPolicy("testing", [`mx.${domain}`]),
  });
  const dns = await startDnsServer({
    mx: { [domain]: [{ exchange: `mx.${domain}`, priority: 10 }] },
    a: { ...a, [`mta-sts.${domain}`]: ["127.0.0.1"], [receiverName]: ["127.0.0.1"] },
    txt: {
      [`_mta-sts.${domain}`]: ["v=STSv1; id=20261205"],
      [`_smtp._tls.${domain}`]: [`v=TLSRPTv1; rua=${rua}`],
    },
  });
  try {
    await using relay = await startRelay({
      env: mxDeliveryEnv({ dns, mxPort, policyServer, caFile: ca.file }),
    });
    // testing mode: delivered to the self-signed MX, counted as a failed session.
    const [id] = await submit(relay, [{
      from: "app@origin.test",
      to: `user@${domain}`,
      tag: "https-rua",
    }]);
    await waitForStatus(relay, id!, "delivered", 30_000);

    const day = new Date().toISOString().slice(0, 10);
    const sent = await relay.api("/v1/tls-reports/send", { body: { day } });
    assert.equal(sent.status, 200, JSON.stringify(sent.json));
    assert.deepEqual(sent.json.data, [{ domain, to: rua, ok: true }]);

    // The POST is over by the time the send answers: the receiver has it.
    assert.equal(receiver.requests.length, 1);
    const post = receiver.requests[0]!;
    assert.equal(post.method, "POST");
    assert.equal(post.path, "/report?from=postern");
    assert.equal(post.host, `${receiverName}:${receiver.port}`);
    // RFC 8460 §5.2 and §5.4: gzipped, and labelled so.
    assert.equal(post.contentType, "application/tlsrpt+gzip");
    const json = JSON.parse(new TextDecoder().decode(gunzipSync(post.body)));
    assert.deepEqual(json["date-range"], {
      "start-datetime": `${day}T00:00:00Z`,
      "end-datetime": `${day}T23:59:59Z`,
    });
    assert.equal(typeof json["report-id"], "string");
    assert.equal(json.policies.length, 1);
    const [policy] = json.policies;
    assert.equal(policy.policy["policy-type"], "sts");
    assert.equal(policy.policy["policy-domain"], domain);
    assert.deepEqual(policy.policy["mx-host"], [`mx.${domain}`]);
    assert.ok(policy.policy["policy-string"].includes("mode: testing"));
    assert.deepEqual(policy.summary, {
      "total-successful-session-count": 0,
      "total-failure-session-count": 1,
    });
    assert.deepEqual(policy["failure-details"], [{
      "result-type": "certificate-not-trusted",
      "receiving-mx-hostname": `mx.${domain}`,
      "failed-session-count": 1,
    }]);
  } finally {
    await closeAll(Object.values(sinks));
    await receiver.close();
    await policyServer.close();
    await dns.close();
  }
});

Deno.test("DANE: a certificate must match the MX host's DNSSEC-validated TLSA records, and DANE beats MTA-STS", async () => {
  const ca = await createTestCa();
  const mxPort = await freePort();
  const eeCert = await selfSignedCertificate(["mx.dane-ee.test"]);
  const overCert = await selfSignedCertificate(["mx.dane-over-sts.test"]);
  const insecureCert = await selfSignedCertificate(["mx.dane-insecure.test"]);
  const { sinks, a } = await mxSinks(mxPort, {
    "mx.dane-ee.test": eeCert,
    "mx.dane-bad.test": await selfSignedCertificate(["mx.dane-bad.test"]),
    "mx.dane-ta.test": await ca.issue(["mx.dane-ta.test"]),
    "mx.dane-ta-wrong.test": await ca.issue(["other.test"]),
    "mx.dane-insecure.test": insecureCert,
    "mx.dane-over-sts.test": overCert,
    "mx.dane-plain.test": null,
  });
  const policyServer = await startMtaStsServer(await ca.issue(["mta-sts.dane-over-sts.test"]), {
    "dane-over-sts.test": stsPolicy("enforce", ["mx.dane-over-sts.test"]),
  });
  const names = [
    "dane-ee",
    "dane-bad",
    "dane-ta",
    "dane-ta-wrong",
    "dane-insecure",
    "dane-over-sts",
    "dane-plain",
  ];
  const mx: Record<string, { exchange: string; priority: number }[]> = {};
  for (const d of names) mx[`${d}.test`] = [{ exchange: `mx.${d}.test`, priority: 10 }];
  const owner = (d: string) => `_${mxPort}._tcp.mx.${d}.test`;
  const caCert = ca.cert;
  const tlsa = {
    [owner("dane-ee")]: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(eeCert.cert) }],
    // Pins another key: the MX's certificate does not match.
    [owner("dane-bad")]: [{
      usage: 3,
      selector: 1,
      matchingType: 1,
      data: spkiSha256(overCert.cert),
    }],
    [owner("dane-ta")]: [{ usage: 2, selector: 0, matchingType: 1, data: certSha256(caCert) }],
    [owner("dane-ta-wrong")]: [{
      usage: 2,
      selector: 0,
      matchingType: 1,
      data: certSha256(caCert),
    }],
    // Unsigned (no AD bit): not usable, so delivery goes on as without DANE.
    [owner("dane-insecure")]: [{
      usage: 3,
      selector: 1,
      matchingType: 1,
      data: spkiSha256(eeCert.cert),
    }],
    [owner("dane-over-sts")]: [{
      usage: 3,
      selector: 1,
      matchingType: 1,
      data: spkiSha256(overCert.cert),
    }],
    // TLSA says TLS, the MX offers none: never in clear.
    [owner("dane-plain")]: [{ usage: 3, selector: 1, matchingType: 1, data: spkiSha256(caCert) }],
  };
  const dns = await startDnsServer({
    mx,
    a: { ...a, "mta-sts.dane-over-sts.test": ["127.0.0.1"] },
    txt: { "_mta-sts.dane-over-sts.test": ["v=STSv1; id=1"] },
    tlsa,
    authenticated: Object.keys(tlsa).filter((n) => !n.includes("dane-insecure")),
  });
  try {
    await using relay = await startRelay({
      env: mxDeliveryEnv({ dns, mxPort, policyServer, caFile: ca.file }, {
        POSTERN_DNSSEC_RESOLVER: `127.0.0.1:${dns.port}`,
      }),
    });
    const ids = await submit(
      relay,
      names.map((d) => ({ from: "app@origin.test", to: `user@${d}.test`, tag: d })),
    );
    const id = Object.fromEntries(names.map((d, i) => [d, ids[i]!]));

    for (const d of ["dane-ee", "dane-ta", "dane-over-sts"]) {
      const tls = deliveredTls(await waitForStatus(relay, id[d]!, "delivered", 30_000));
      assert.deepEqual([tls.details?.verified, tls.details?.verified_by], [true, "dane"], d);
    }
    for (const d of ["dane-bad", "dane-ta-wrong", "dane-plain"]) {
      const rcpt = await deferred(relay, id[d]!);
      assert.equal(rcpt.category, "tls_failure", `${d}: ${JSON.stringify(rcpt)}`);
      assert.equal(sinks[`mx.${d}.test`]!.messages.length, 0, d);
    }
    const insecure = await waitForStatus(relay, id["dane-insecure"]!, "delivered", 30_000);
    assert.equal(deliveredTls(insecure).details?.verified, false);

    const reports = await relay.api("/v1/tls-reports");
    // deno-lint-ignore no-explicit-any
    const ee = reports.json.data.find((r: any) => r.domain === "dane-ee.test").policies[0];
    assert.equal(ee.policy_type, "tlsa");
    assert.equal(ee.successful_sessions, 1);
  } finally {
    await closeAll(Object.values(sinks));
    await policyServer.close();
    await dns.close();
  }
});
