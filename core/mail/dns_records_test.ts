import assert from "node:assert/strict";
import { compareRecord, dkimRecord, dmarcRecord, spfRecord } from "./dns_records.ts";

const options = { spfInclude: "spf.postern.test" };

Deno.test("compareRecord() matches a DKIM key by its p= and k= tags, whitespace aside", () => {
  const record = dkimRecord("example.test", {
    selector: "s",
    algorithm: "rsa",
    publicKey: "AAAABBBB",
  });
  assert.equal(record.name, "s._domainkey.example.test");
  assert.equal(compareRecord(record, [], options), "missing");
  assert.equal(compareRecord(record, ["v=spf1 -all"], options), "missing");
  assert.equal(compareRecord(record, ["v=DKIM1; k=rsa; p=AAAA BBBB"], options), "verified");
  assert.equal(compareRecord(record, ["p=AAAABBBB"], options), "verified"); // k= defaults to rsa
  assert.equal(compareRecord(record, ["v=DKIM1; k=ed25519; p=AAAABBBB"], options), "mismatch");
  assert.equal(compareRecord(record, ["v=DKIM1; k=rsa; p=CCCC"], options), "mismatch");
});

Deno.test("compareRecord() wants exactly one SPF record that includes Postern", () => {
  const record = spfRecord("example.test", options.spfInclude);
  assert.equal(record.value, "v=spf1 include:spf.postern.test ~all");
  assert.equal(compareRecord(record, ["google-site-verification=x"], options), "missing");
  assert.equal(
    compareRecord(record, ["v=spf1 mx include:SPF.postern.test -all"], options),
    "verified",
  );
  assert.equal(compareRecord(record, ["v=spf1 include:other.test -all"], options), "mismatch");
  assert.equal(
    compareRecord(record, ["v=spf1 include:spf.postern.test -all", "v=spf1 -all"], options),
    "mismatch",
  );
});

Deno.test("compareRecord() accepts any single DMARC policy", () => {
  const record = dmarcRecord("example.test");
  assert.equal(record.name, "_dmarc.example.test");
  assert.equal(compareRecord(record, [], options), "missing");
  assert.equal(
    compareRecord(record, ["v=DMARC1; p=reject; rua=mailto:x@example.test"], options),
    "verified",
  );
  assert.equal(
    compareRecord(record, ["v=DMARC1; p=none", "v=DMARC1; p=reject"], options),
    "mismatch",
  );
});
