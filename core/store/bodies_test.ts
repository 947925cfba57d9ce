import assert from "node:assert/strict";
import { withPrefix } from "./bodies.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function text(body: Uint8Array | AsyncIterable<Uint8Array>): Promise<string> {
  if (body instanceof Uint8Array) return dec.decode(body);
  let out = "";
  for await (const chunk of body) out += dec.decode(chunk, { stream: true });
  return out;
}

Deno.test("a message goes out as its prefix in UTF-8 then its stored body, whole or streamed, ASCII prefix or not", async () => {
  const body = enc.encode("From: a@b.test\r\n\r\nhello\r\n");
  for (
    const prefix of [
      "DKIM-Signature: v=1; a=ed25519-sha256; d=b.test;\r\n\tb=AAAA\r\n",
      "X-Spam-Report: caf\u00e9 \u{1F600}\r\n",
    ]
  ) {
    assert.equal(await text(withPrefix(prefix, body)), prefix + dec.decode(body));
    const streamed = (async function* () {
      yield body.subarray(0, 5);
      yield body.subarray(5);
    })();
    assert.equal(await text(withPrefix(prefix, streamed)), prefix + dec.decode(body));
  }
  assert.equal(withPrefix(undefined, body), body, "no prefix: the stored body as it is");
});
