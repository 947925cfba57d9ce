import assert from "node:assert/strict";
import fc from "fast-check";
import { bareLineEndingFinder, crlfNormalizer } from "./line_endings.ts";

/** Bytes rich in CR, LF, NUL and dots, the characters line-ending bugs hide among. */
const mailBytes = fc.array(
  fc.oneof(
    fc.constantFrom(13, 10, 0, 46, 13, 10),
    fc.integer({ min: 0, max: 255 }),
  ),
  { maxLength: 200 },
).map((a) => Uint8Array.from(a));

/** `bytes` cut at the given offsets (each taken modulo the length). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length ? c % bytes.length : 0)))]
    .sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    parts.push(bytes.subarray(from, p));
    from = p;
  }
  parts.push(bytes.subarray(from));
  return parts;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function normalizeAll(parts: Uint8Array[]): Uint8Array {
  const normalize = crlfNormalizer();
  return concat([...parts.map((p) => normalize(p)), normalize(new Uint8Array(0), true)]);
}

/** The reference answer, from the whole buffer at once. */
function firstBare(bytes: Uint8Array): "CR" | "LF" | "NUL" | null {
  const text = new TextDecoder("latin1").decode(bytes);
  const m = /\r(?!\n)|(?<!\r)\n|\0/.exec(text);
  if (!m) return null;
  return m[0] === "\0" ? "NUL" : m[0] === "\n" ? "LF" : "CR";
}

const RUNS = { numRuns: 300 };

Deno.test("crlfNormalizer() leaves no bare CR or LF, however the input is split", () => {
  fc.assert(
    fc.property(mailBytes, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const whole = normalizeAll([bytes]);
      assert.deepEqual(normalizeAll(split(bytes, cuts)), whole);
      const text = new TextDecoder("latin1").decode(whole);
      assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), JSON.stringify(text));
    }),
    RUNS,
  );
});

Deno.test("crlfNormalizer() changes nothing in a message that is already CRLF-clean", () => {
  fc.assert(
    fc.property(mailBytes, (bytes) => {
      const clean = normalizeAll([bytes]);
      assert.deepEqual(normalizeAll([clean]), clean);
    }),
    RUNS,
  );
});

Deno.test("bareLineEndingFinder() finds the first bare CR, bare LF or NUL, however the input is split", () => {
  fc.assert(
    fc.property(mailBytes, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const find = bareLineEndingFinder();
      let found: ReturnType<typeof find> = null;
      for (const part of split(bytes, cuts)) found ??= find(part);
      found ??= find(new Uint8Array(0), true);
      assert.equal(found, firstBare(bytes));
    }),
    RUNS,
  );
});

Deno.test("bareLineEndingFinder() names each kind", () => {
  const check = (text: string) => {
    const find = bareLineEndingFinder();
    return find(new TextEncoder().encode(text), true);
  };
  assert.equal(check("a\r\nb\r\n"), null);
  assert.equal(check("a\nb"), "LF");
  assert.equal(check("a\rb"), "CR");
  assert.equal(check("a\r"), "CR");
  assert.equal(check("a\0b\r\n"), "NUL");
  assert.equal(check("\r\r\n"), "CR");
});
