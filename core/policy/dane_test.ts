import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { generate } from "selfsigned";
import { matchTlsa, type TlsaRecord, usableTlsa } from "./dane.ts";

const EC = { keyType: "ec", algorithm: "sha256" } as const;

async function chain() {
  const ca = await generate([{ name: "commonName", value: "TA" }], {
    ...EC,
    extensions: [{ name: "basicConstraints", cA: true }, { name: "keyUsage", keyCertSign: true }],
  });
  const leaf = await generate([{ name: "commonName", value: "mx.dest.test" }], {
    ...EC,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [{
      name: "subjectAltName",
      altNames: [{ type: 2, value: "mx.dest.test" }],
    }],
  });
  return [new X509Certificate(leaf.cert), new X509Certificate(ca.cert)];
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());
const spki = (c: X509Certificate) =>
  new Uint8Array(c.publicKey.export({ type: "spki", format: "der" }));

Deno.test("DANE-EE 3 1 1 pins the server's key, whatever the name", async () => {
  const [leaf, ta] = await chain();
  const ee: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: sha256(spki(leaf!)) };
  assert.deepEqual(matchTlsa([ee], [leaf!, ta!], ["other.test"]), { ok: true, usage: 3 });
  const wrong: TlsaRecord = { ...ee, data: sha256(spki(ta!)) };
  assert.equal(matchTlsa([wrong], [leaf!, ta!], ["mx.dest.test"]).ok, false);
});

Deno.test("DANE-TA 2 0 1 pins an issuer that signed the leaf, and the leaf must name the host", async () => {
  const [leaf, ta] = await chain();
  const record: TlsaRecord = { usage: 2, selector: 0, matchingType: 1, data: sha256(ta!.raw) };
  assert.deepEqual(matchTlsa([record], [leaf!, ta!], ["mx.dest.test"]), { ok: true, usage: 2 });
  const misnamed = matchTlsa([record], [leaf!, ta!], ["mx.other.test"]);
  assert.ok(!misnamed.ok);
  // The issuer must be in the chain the server presented.
  assert.equal(matchTlsa([record], [leaf!], ["mx.dest.test"]).ok, false);
});

Deno.test("PKIX usages 0 and 1 are not usable for SMTP", () => {
  const data = new Uint8Array(32);
  assert.deepEqual(
    usableTlsa([
      { usage: 0, selector: 0, matchingType: 1, data },
      { usage: 1, selector: 1, matchingType: 1, data },
      { usage: 3, selector: 1, matchingType: 1, data },
    ]).map((r) => r.usage),
    [3],
  );
});
