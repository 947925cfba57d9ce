import assert from "node:assert/strict";
import fc from "fast-check";
import { Buffer } from "node:buffer";
// @ts-types="./_mailauth_body.d.ts"
import { dkimBody } from "mailauth/lib/dkim/body/index.js";
import { RelaxedBodyHash } from "./dkim_body.ts";

const enc = new TextEncoder();

function mailauthHash(chunks: readonly Uint8Array[]): string {
  const h = dkimBody("relaxed/relaxed", "sha256");
  for (const c of chunks) h.update(Buffer.from(c));
  return h.digest("base64");
}

function ourHash(chunks: readonly Uint8Array[]): string {
  const h = new RelaxedBodyHash();
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** `body` cut at `cuts` (positions, any order). */
function split(body: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of at) {
    out.push(body.subarray(from, c));
    from = c;
  }
  out.push(body.subarray(from));
  return out;
}

// Bodies as intake hands them over: CRLF line endings only, with the whitespace cases of
// RFC 6376 §3.4.4 (runs, HTAB, trailing WSP, whitespace-only and empty lines, a last line
// without CRLF) in every mix, cut into chunks anywhere (between a CR and its LF too).
const token = fc.constantFrom("a", "b.", " ", "  ", "\t", " \t ", "\r\n", "\r\n\r\n", "x y", "é");
const bodies = fc.array(token, { maxLength: 60 }).map((t) => enc.encode(t.join("")));

Deno.test("the relaxed body hash equals mailauth's for any body, however it is cut into chunks", () => {
  fc.assert(
    fc.property(bodies, fc.array(fc.nat(), { maxLength: 8 }), (body, cuts) => {
      assert.equal(ourHash(split(body, cuts)), mailauthHash([body]));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("the relaxed body hash of the RFC 6376 cases: empty body, only empty lines, a large body", () => {
  for (
    const body of ["", "\r\n\r\n\r\n", "   \r\n", "Hi  there \r\n\r\n", "no CRLF at the end  "]
  ) {
    assert.equal(
      ourHash([enc.encode(body)]),
      mailauthHash([enc.encode(body)]),
      JSON.stringify(body),
    );
  }
  const line = "The quick brown fox jumps over the lazy dog,  again\tand again. \r\n";
  const big = enc.encode(line.repeat(20_000) + "\r\n\r\n");
  const chunks = split(big, Array.from({ length: 40 }, (_, i) => i * 33_331));
  assert.equal(ourHash(chunks), mailauthHash(chunks));
});
