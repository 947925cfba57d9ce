import assert from "node:assert/strict";
import fc from "fast-check";
import { DatabaseSync } from "node:sqlite";
import { keySize, valueSize, valueSizeBound } from "./commit_size.ts";

/** The bytes Deno KV really stored for each value, read from the SQLite file under it. */
async function storedSizes(values: unknown[]): Promise<number[]> {
  const dir = await Deno.makeTempDir({ prefix: "postern_commit_size_" });
  const path = `${dir}/kv`;
  try {
    const kv = await Deno.openKv(path);
    try {
      for (let i = 0; i < values.length; i++) await kv.set(["v", i], values[i]);
    } finally {
      kv.close();
    }
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      // Keys ["v", i] sort by i: the rows come back in the order the values were given.
      const rows = db.prepare("SELECT length(v) AS n FROM kv ORDER BY k").all() as { n: number }[];
      assert.equal(rows.length, values.length);
      return rows.map((r) => r.n);
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A string V8 keeps in two-byte form though every character fits one byte. */
function twoByteAscii(s: string): string {
  return ("\u20ac".repeat(2) + s + "x".repeat(16)).slice(2);
}

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.string().map(twoByteAscii),
);
const leaf = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => a.subarray(1)),
);
const plain = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
  array: fc.oneof(
    fc.array(tie("value"), { maxLength: 8 }),
    // Holey in V8's eyes though it has no holes: written sparse.
    fc.array(tie("value"), { maxLength: 8 }).map((a) => {
      const h = new Array(a.length);
      a.forEach((x, i) => h[i] = x);
      return h;
    }),
    fc.sparseArray(tie("value"), { maxLength: 8 }),
  ),
  object: fc.dictionary(text, tie("value"), { maxKeys: 8 }),
})).value;

Deno.test("a value's size bound is never below the bytes Deno KV stores for it", async () => {
  const values = fc.sample(plain, { numRuns: 400, seed: 18 });
  values.push(
    { rcpts: [0], body: new Uint8Array(2100) },
    { nested: new Uint8Array(5000).subarray(0, 10) },
    new Map([["a", 1]]),
    new Uint16Array(7),
  );
  const stored = await storedSizes(values);
  values.forEach((v, i) => {
    const bound = valueSizeBound(v);
    assert.ok(bound >= stored[i]!, `bound ${bound} < stored ${stored[i]} for ${Deno.inspect(v)}`);
  });
});

Deno.test("the size bound of a recipient row stays near twice its serialized size (text counted at two bytes a character)", () => {
  const row = {
    msgId: "01JF3Q8ZK2M4N5P6Q7R8S9T0V1",
    idx: 0,
    rcpt: "user12345@example.com",
    domain: "example.com",
    status: "queued",
    attempts: 0,
    queuedAt: 1_765_000_000_000,
    nextAttemptAt: 1_765_000_000_000,
    updatedAt: 1_765_000_000_000,
    events: ["01JF3Q8ZK2M4N5P6Q7R8S9T0V2"],
  };
  const exact = valueSize(row);
  assert.ok(valueSizeBound(row) >= exact);
  assert.ok(valueSizeBound(row) <= 2.2 * exact, `${valueSizeBound(row)} vs ${exact}`);
});

Deno.test("a key is sized as Deno encodes it, whatever characters its parts hold", () => {
  const encoder = new TextEncoder();
  for (const part of ["abc", "", "a\u0000b", "ümlaut", "\u20ac", "x".repeat(300)]) {
    const escaped = [...encoder.encode(part)].reduce((n, b) => n + (b === 0 ? 2 : 1), 0);
    assert.equal(keySize([part]), 2 + escaped, JSON.stringify(part));
  }
});
