import assert from "node:assert/strict";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { DkimSigner, dkimTxtValue, generateDkimKey } from "./dkim.ts";

const enc = new TextEncoder();

function zoneResolver(records: Record<string, string>) {
  return (name: string, type: string) => {
    const value = records[name.toLowerCase()];
    if (type !== "TXT" || value === undefined) {
      return Promise.reject(
        Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" }),
      );
    }
    return Promise.resolve([[value]]);
  };
}

Deno.test("DkimSigner signs with RSA and Ed25519 so that mailauth verifies both", async () => {
  const rsa = generateDkimKey("rsa");
  const ed = generateDkimKey("ed25519");
  const head =
    "From: App <app@example.test>\r\nTo:   someone@dest.test\r\nSubject: hello\r\n\t  folded\r\n";
  const body = "Hi there  \r\n\r\nsecond\tline\r\n\r\n\r\n";
  const signer = new DkimSigner([
    {
      domain: "example.test",
      selector: "pst202611",
      algorithm: "rsa",
      privateKey: rsa.privateKey,
      version: "1",
    },
    {
      domain: "example.test",
      selector: "pst202611e",
      algorithm: "ed25519",
      privateKey: ed.privateKey,
      version: "1",
    },
  ]);
  signer.update(enc.encode(body.slice(0, 5)));
  signer.update(enc.encode(body.slice(5)));
  const prefix = await signer.sign(enc.encode(head), new Date());
  assert.match(prefix, /h=from:from:subject:to;/);
  const message = prefix + head + "\r\n" + body;
  const result = await dkimVerify(message, {
    resolver: zoneResolver({
      "pst202611._domainkey.example.test": dkimTxtValue("rsa", rsa.publicKey),
      "pst202611e._domainkey.example.test": dkimTxtValue("ed25519", ed.publicKey),
    }),
  });
  assert.deepEqual(result.results.map((r: { status: { result: string } }) => r.status.result), [
    "pass",
    "pass",
  ]);
  // A second From added after signing breaks the signature (over-signing, RFC 6376 §8.15).
  const tampered = prefix + "From: evil@attacker.test\r\n" + head + "\r\n" + body;
  const bad = await dkimVerify(tampered, {
    resolver: zoneResolver({
      "pst202611._domainkey.example.test": dkimTxtValue("rsa", rsa.publicKey),
      "pst202611e._domainkey.example.test": dkimTxtValue("ed25519", ed.publicKey),
    }),
  });
  assert.ok(bad.results.every((r: { status: { result: string } }) => r.status.result !== "pass"));
});
