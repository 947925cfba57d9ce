/**
 * End to end: sending domains over the HTTP API. Adding one generates DKIM keys and answers with
 * the exact DNS records to publish; verification looks them up through POSTERN_DNS (a loopback
 * DNS responder) and reports each record; bad input is refused as JSON errors.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createPublicKey } from "node:crypto";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type DnsServer, startDnsServer } from "./support/dns_server.ts";
import { assertError, call, newAccount, publish } from "./support/tenants.ts";

const SPF_NAME = "spf.postern.test";

async function relayWithDns(): Promise<
  { relay: Relay; dns: DnsServer; [Symbol.asyncDispose](): Promise<void> }
> {
  const dns = await startDnsServer({ txt: {} });
  let relay: Relay;
  try {
    relay = await startRelay({
      env: { POSTERN_DNS: `127.0.0.1:${dns.port}`, POSTERN_SPF_INCLUDE: SPF_NAME },
    });
  } catch (error) {
    await dns.close();
    throw error;
  }
  return {
    relay,
    dns,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await dns.close();
    },
  };
}

interface RecordView {
  purpose: string;
  type: string;
  name: string;
  value: string;
  required: boolean;
  selector?: string;
  state: string | null;
}

function month(): string {
  return new Date().toISOString().slice(0, 7).replace("-", "");
}

Deno.test("POST /v1/domains returns the DKIM, SPF and DMARC records to publish, never a private key", async () => {
  await using env = await relayWithDns();
  const { relay } = env;
  const res = await call(relay, "/v1/domains", { body: { name: "Example.TEST." } });
  assert.equal(res.status, 201, res.text);
  assert.match(res.json.id, /^dom_[a-z0-9]{16}$/);
  assert.equal(res.json.name, "example.test");
  assert.equal(res.json.verified, false);
  assert.deepEqual(
    res.json.dkim.map((
      k: { selector: string; algorithm: string; status: string },
    ) => [k.selector, k.algorithm, k.status]),
    [
      [`pst${month()}`, "rsa", "active"],
    ],
  );
  const records: RecordView[] = res.json.records;
  assert.deepEqual(records.map((r) => [r.purpose, r.type, r.name, r.required]), [
    ["dkim", "TXT", `pst${month()}._domainkey.example.test`, true],
    ["spf", "TXT", "example.test", false],
    ["dmarc", "TXT", "_dmarc.example.test", false],
  ]);
  const dkim = /^v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)$/.exec(records[0]!.value);
  assert.ok(dkim, records[0]!.value);
  const publicKey = createPublicKey({
    key: Buffer.from(dkim[1]!, "base64"),
    format: "der",
    type: "spki",
  });
  assert.equal(publicKey.asymmetricKeyType, "rsa");
  assert.equal(publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.equal(records[1]!.value, `v=spf1 include:${SPF_NAME} ~all`);
  assert.match(records[2]!.value, /^v=DMARC1; p=none(;|$)/);

  // Both algorithms at once: an Ed25519 key (RFC 8463) under its own selector.
  const both = await call(relay, "/v1/domains", {
    body: { name: "both.test", dkim: { algorithms: ["rsa", "ed25519"] } },
  });
  assert.equal(both.status, 201, both.text);
  const ed = both.json.records.find((r: RecordView) => r.selector === `pst${month()}e`);
  const edKey = /^v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)$/.exec(ed.value);
  assert.ok(edKey, ed.value);
  assert.equal(Buffer.from(edKey[1]!, "base64").length, 32);

  const texts = [
    res.text,
    both.text,
    (await call(relay, "/v1/domains")).text,
    (await call(relay, `/v1/domains/${res.json.id}`)).text,
  ];
  for (const text of texts) {
    assert.ok(!/PRIVATE KEY|private/i.test(text), "a private key left the API");
  }
  assert.ok(
    !/PRIVATE KEY/.test(JSON.stringify(relay.logs) + relay.stderr),
    "a private key was logged",
  );
});

Deno.test("bad domain input is refused with JSON errors: 400, 404, 409", async () => {
  await using env = await relayWithDns();
  const { relay } = env;
  const malformed = [
    "not a domain",
    "localhost",
    "-bad.test",
    "bad-.test",
    "a..b.test",
    "under_score.test",
    "example.123",
    "exa mple.test",
    "xn--bücher.test",
    "a".repeat(64) + ".test",
    ("a".repeat(60) + ".").repeat(5) + "test", // 305 characters
    "",
  ];
  for (const name of malformed) {
    const res = await call(relay, "/v1/domains", { body: { name } });
    assertError(res, 400, "invalid_request");
    assert.ok(res.json.error.details.some((d: { path: string }) => d.path === "name"), res.text);
  }
  for (
    const body of [
      { name: 42 },
      { name: ["example.test"] },
      {},
      { name: "example.test", extra: true },
      { name: "example.test", dkim: { algorithms: ["dsa"] } },
      { name: "example.test", dkim: { algorithms: [] } },
      { name: "example.test", dkim: { algorithms: ["rsa", "rsa"] } },
      { name: "example.test", dkim: { selector: "mine" } },
    ]
  ) {
    assertError(await call(relay, "/v1/domains", { body }), 400, "invalid_request");
  }
  assertError(await call(relay, "/v1/domains", { body: '{"name":' }), 400, "invalid_request");

  assert.equal((await call(relay, "/v1/domains", { body: { name: "example.test" } })).status, 201);
  assertError(
    await call(relay, "/v1/domains", { body: { name: "EXAMPLE.test" } }),
    409,
    "conflict",
  );
  // A domain belongs to one account: another account cannot add it too.
  const other = await newAccount(relay, "other");
  assertError(
    await call(relay, "/v1/domains", { body: { name: "example.test" }, account: other }),
    409,
    "conflict",
  );

  for (const id of ["dom_0000000000000000", "nonsense", "dom_" + "x".repeat(300)]) {
    assertError(await call(relay, `/v1/domains/${id}`), 404, "not_found");
    assertError(await call(relay, `/v1/domains/${id}`, { method: "DELETE" }), 404, "not_found");
    assertError(
      await call(relay, `/v1/domains/${id}/verify`, { method: "POST" }),
      404,
      "not_found",
    );
    assertError(
      await call(relay, `/v1/domains/${id}/rotate-dkim`, { method: "POST" }),
      404,
      "not_found",
    );
  }
});

Deno.test("POST /v1/domains/:id/verify reports each record as missing, mismatch or verified", async () => {
  await using env = await relayWithDns();
  const { relay, dns } = env;
  const created = await call(relay, "/v1/domains", { body: { name: "example.test" } });
  const id = created.json.id;
  const records: RecordView[] = created.json.records;

  const states = (res: { json: { records: RecordView[] } }) =>
    Object.fromEntries(res.json.records.map((r) => [r.purpose, r.state]));

  // Nothing published yet.
  const none = await call(relay, `/v1/domains/${id}/verify`, { method: "POST" });
  assert.equal(none.status, 200, none.text);
  assert.deepEqual(states(none), { dkim: "missing", spf: "missing", dmarc: "missing" });
  assert.equal(none.json.verified, false);
  // The lookups went to POSTERN_DNS.
  const asked = new Set(dns.queries.filter((q) => q.type === "TXT").map((q) => q.name));
  for (const r of records) assert.ok(asked.has(r.name), `no TXT query for ${r.name}`);

  // Wrong key, an SPF record without our include, and a DMARC record.
  const other = await call(relay, "/v1/domains", { body: { name: "other.test" } });
  dns.zone.txt = {
    [records[0]!.name]: [other.json.records[0].value],
    "example.test": ["v=spf1 include:_spf.elsewhere.test -all", "google-site-verification=abc"],
    "_dmarc.example.test": ["v=DMARC1; p=reject"],
  };
  const wrong = await call(relay, `/v1/domains/${id}/verify`, { method: "POST" });
  assert.deepEqual(states(wrong), { dkim: "mismatch", spf: "mismatch", dmarc: "verified" });
  assert.equal(wrong.json.verified, false);

  // As listed (the DNS server splits the long DKIM value into 255-byte strings).
  dns.zone.txt = {};
  publish(dns.zone, records);
  const right = await call(relay, `/v1/domains/${id}/verify`, { method: "POST" });
  assert.deepEqual(states(right), { dkim: "verified", spf: "verified", dmarc: "verified" });
  assert.equal(right.json.verified, true);
  assert.ok(right.json.verified_at);

  const read = await call(relay, `/v1/domains/${id}`);
  assert.equal(read.json.verified, true);
  assert.deepEqual(states(read), { dkim: "verified", spf: "verified", dmarc: "verified" });

  // Only the DKIM record is required: without SPF and DMARC the domain still verifies...
  dns.zone.txt = { [records[0]!.name]: [records[0]!.value] };
  const dkimOnly = await call(relay, `/v1/domains/${id}/verify`, { method: "POST" });
  assert.equal(dkimOnly.json.verified, true);
  // ...and once the DKIM record goes, it no longer does.
  dns.zone.txt = {};
  const gone = await call(relay, `/v1/domains/${id}/verify`, { method: "POST" });
  assert.equal(gone.json.verified, false);
});

Deno.test("GET lists the account's domains and DELETE removes one", async () => {
  await using env = await relayWithDns();
  const { relay } = env;
  const a = await call(relay, "/v1/domains", { body: { name: "b.example.test" } });
  const b = await call(relay, "/v1/domains", { body: { name: "a.example.test" } });
  const list = await call(relay, "/v1/domains");
  assert.deepEqual(list.json.data.map((d: { name: string }) => d.name), [
    "a.example.test",
    "b.example.test",
  ]);

  const del = await call(relay, `/v1/domains/${a.json.id}`, { method: "DELETE" });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(del.json, { id: a.json.id, name: "b.example.test", deleted: true });
  assertError(await call(relay, `/v1/domains/${a.json.id}`), 404, "not_found");
  assertError(
    await call(relay, `/v1/domains/${a.json.id}`, { method: "DELETE" }),
    404,
    "not_found",
  );
  assert.deepEqual((await call(relay, "/v1/domains")).json.data.map((d: { id: string }) => d.id), [
    b.json.id,
  ]);
  // The name is free again.
  assert.equal(
    (await call(relay, "/v1/domains", { body: { name: "b.example.test" } })).status,
    201,
  );

  // A credential key reads its account's domains but does not manage them.
  const key = await call(relay, "/v1/credentials", { body: { name: "app" } });
  const token = key.json.password;
  assert.equal((await call(relay, `/v1/domains/${b.json.id}`, { token })).status, 200);
  assertError(
    await call(relay, "/v1/domains", { body: { name: "c.test" }, token }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, `/v1/domains/${b.json.id}`, { method: "DELETE", token }),
    403,
    "forbidden",
  );
  assertError(
    await call(relay, `/v1/domains/${b.json.id}/rotate-dkim`, { method: "POST", token }),
    403,
    "forbidden",
  );
});
