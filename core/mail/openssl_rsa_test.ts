import assert from "node:assert/strict";
import { createPrivateKey, sign } from "node:crypto";
import { generateDkimKey } from "./dkim.ts";
import { openSsl } from "./openssl_rsa.ts";

Deno.test("OpenSSL's RSA-SHA256 signature is byte for byte node:crypto's", () => {
  const ssl = openSsl();
  assert.ok(ssl, "libcrypto.so.3 loads here (Debian's libssl3)");
  const pem = generateDkimKey("rsa").privateKey;
  const key = ssl.key(pem);
  try {
    for (const size of [0, 1, 600, 70_000]) {
      const data = new Uint8Array(size).map((_, i) => (i * 7) & 255);
      assert.deepEqual(
        new Uint8Array(key.sign(data)),
        new Uint8Array(sign("sha256", data, createPrivateKey(pem))),
      );
    }
  } finally {
    key.free();
  }
  assert.throws(() => key.sign(new Uint8Array(1)), /freed/);
});

Deno.test("OpenSSL refuses a private key that does not parse", () => {
  const ssl = openSsl();
  assert.ok(ssl);
  assert.throws(
    () => ssl.key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    /does not parse/,
  );
});
