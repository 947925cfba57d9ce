/**
 * What one KV commit may hold, and how much a change really holds. Two sets of limits apply:
 * the server's (denokv's proto/limits.rs, the same on hosted Deno KV: 10 checks, 1000 mutations,
 * 819 200 bytes of keys and values) and Deno's own client's, checked before anything is sent,
 * locally and remotely alike (1000 mutations, 819 200 bytes counting the key of each set twice,
 * and 81 920 bytes of keys of sets). A local store allows 100 checks; denokv allows 10, so a
 * commit that works on a local file can be refused by a remote store: the committer keeps to the
 * smaller of each.
 *
 * Sizes are measured, not guessed: {@linkcode measureChange} runs a change against a recorder
 * that sizes each key as Deno encodes it and each value by a bound on what V8 serializes it to
 * ({@linkcode valueSizeBound}: counted from the value's shape, never less than the bytes stored).
 */
import { serialize } from "node:v8";
import { memoizedNameTest } from "../name_memo.ts";

/** The smaller of the server's and the client's limit for each quantity. */
export const KV_LIMITS = {
  checks: 10,
  mutations: 1000,
  /** Client count: check keys + mutation keys + (key + value) of each set/sum/min/max. */
  payloadBytes: 819_200,
  /** Client count: the keys of sets/sums/mins/maxes. */
  keyBytes: 81_920,
  valueBytes: 65_536,
} as const;

/**
 * What the committer fills a commit to: values are sized by node's V8 serializer, which may
 * differ from Deno's by a few bytes per value, so byte counts keep a margin.
 */
export const COMMIT_BUDGET = {
  checks: KV_LIMITS.checks,
  mutations: KV_LIMITS.mutations,
  payloadBytes: 790_000,
  keyBytes: 78_000,
} as const;

export interface CommitSize {
  checks: number;
  mutations: number;
  payloadBytes: number;
  keyBytes: number;
}

export const EMPTY_SIZE: CommitSize = { checks: 0, mutations: 0, payloadBytes: 0, keyBytes: 0 };

export function addSizes(a: CommitSize, b: CommitSize): CommitSize {
  return {
    checks: a.checks + b.checks,
    mutations: a.mutations + b.mutations,
    payloadBytes: a.payloadBytes + b.payloadBytes,
    keyBytes: a.keyBytes + b.keyBytes,
  };
}

/** Whether `size` fits `budget` (default: {@linkcode COMMIT_BUDGET}). */
export function fits(size: CommitSize, budget: CommitSize = COMMIT_BUDGET): boolean {
  return size.checks <= budget.checks && size.mutations <= budget.mutations &&
    size.payloadBytes <= budget.payloadBytes && size.keyBytes <= budget.keyBytes;
}

const encoder = new TextEncoder();

function escapedLength(bytes: Uint8Array): number {
  let n = bytes.length;
  for (const b of bytes) if (b === 0) n++;
  return n;
}

/** Printable ASCII and the other 7-bit characters but NUL: one byte each, none escaped. */
const PLAIN_KEY_PART = /^[\x01-\x7f]*$/;

/** The bytes of `key` as Deno KV encodes it (FoundationDB's tuple layer). */
export function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    // Nearly every key part is an id or a domain: counted without encoding it.
    if (typeof part === "string" && PLAIN_KEY_PART.test(part)) n += 2 + part.length;
    else if (typeof part === "string") n += 2 + escapedLength(encoder.encode(part));
    else if (part instanceof Uint8Array) n += 2 + escapedLength(part);
    else if (typeof part === "number") n += 9;
    else if (typeof part === "bigint") n += 2 + Math.ceil(part.toString(16).length / 2) + 1;
    else n += 1; // boolean
  }
  return n;
}

/** The bytes of `value` as stored: raw bytes, 8 for a KvU64, else its V8 serialization. */
export function valueSize(value: unknown): number {
  if (value instanceof Uint8Array) return value.length;
  if (value instanceof Deno.KvU64) return 8;
  return serialize(value).length;
}

/**
 * At least the bytes of `value` as Deno KV stores it, counted from its shape instead of
 * serialized: serializing every value once more only to size it was a tenth of the main thread
 * (issue 18's profile), and Deno serializes it again when the commit is sent. What is counted
 * follows V8's serialization format (v8/src/objects/value-serializer.cc), each item at its
 * largest: a string two bytes a character (V8 keeps some strings in two-byte form whatever they
 * hold), a number as a double, every length as a five-byte varint, a byte array as its whole
 * buffer. So the bound may pass the real size (by up to about twice for text), never fall
 * short of it: a commit sized by it fits. A value of any other kind is serialized and measured.
 */
export function valueSizeBound(value: unknown): number {
  if (value instanceof Uint8Array) return value.length;
  if (value instanceof Deno.KvU64) return 8;
  const shaped = shapeBound(value, 0);
  return shaped < 0 ? SERIALIZE_MARGIN + valueSize(value) : HEADER_BOUND + shaped;
}

/** V8's header (a tag and the format version) and a few bytes of slack. */
const HEADER_BOUND = 8;
/** What Deno's serializer (for storage) may add to node:v8's for one value. */
const SERIALIZE_MARGIN = 64;
/** A tag and a length or count as a varint of at most five bytes. */
const TAG_AND_LENGTH = 6;
/** Plain data is shallow; anything deeper (or cyclic) is measured by serializing it. */
const MAX_DEPTH = 32;

/** The bound of `v` without the header; -1 when `v` is not plain data. */
function shapeBound(v: unknown, depth: number): number {
  switch (typeof v) {
    case "string":
      // An alignment byte, the tag, the byte length, two bytes per UTF-16 unit.
      return 1 + TAG_AND_LENGTH + 2 * v.length;
    case "number":
      return 9;
    case "boolean":
    case "undefined":
      return 1;
    case "bigint":
      // The tag, a bitfield varint of the length and sign, the digits in 64-bit words.
      return 1 + 10 + 8 * Math.ceil((v < 0n ? -v : v).toString(16).length / 16);
    case "object":
      break;
    default:
      return -1;
  }
  if (v === null) return 1;
  if (depth > MAX_DEPTH) return -1;
  if (ArrayBuffer.isView(v)) {
    // Stored with its whole buffer (not only the view's bytes), then the view's tag, kind,
    // offset, length and flags.
    return TAG_AND_LENGTH + v.buffer.byteLength + 2 + 3 * 5;
  }
  if (v instanceof Date) return 9;
  const isArray = Array.isArray(v);
  if (!isArray) {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return -1;
  }
  // Tag, [length,] the properties, end tag, count[, length]. Each property is its key (a number
  // for an index, else a string) and its value: an array V8 holds as "holey" (with holes or
  // not) is written so, and it is sized so whatever V8 chooses.
  let n = (isArray ? 3 : 2) * TAG_AND_LENGTH;
  const record = v as Record<string, unknown>;
  for (const k of Object.keys(record)) {
    const b = shapeBound(record[k], depth + 1);
    if (b < 0) return -1;
    n += keyBound(k) + b;
  }
  return n;
}

/** Property names V8 writes one byte a character (a record's few names, met again and again). */
const isOneByte = memoizedNameTest(/^[\x00-\xff]*$/);

/**
 * A property name: a number for an index, else a string, one byte a character when they all fit
 * one (V8 interns property names, and an interned name is kept in one-byte form when it can be).
 */
function keyBound(k: string): number {
  const oneByte = isOneByte(k);
  return Math.max(9, 1 + TAG_AND_LENGTH + (oneByte ? 1 : 2) * k.length);
}

/** The size of one `set` of `value` at `key`, as the client counts it (the value bounded). */
export function setSize(key: Deno.KvKey, value: unknown): CommitSize {
  const k = keySize(key);
  return { checks: 0, mutations: 1, payloadBytes: 2 * k + valueSizeBound(value), keyBytes: k };
}

/** Runs `apply` against a recorder and returns what it would put in a commit. */
export function measureChange(apply: (op: Deno.AtomicOperation) => void): CommitSize {
  const size = { ...EMPTY_SIZE };
  const withValue = (key: Deno.KvKey, value: unknown) => {
    const s = setSize(key, value);
    size.mutations++;
    size.payloadBytes += s.payloadBytes;
    size.keyBytes += s.keyBytes;
  };
  const recorder = {
    check(...checks: Deno.AtomicCheck[]) {
      for (const c of checks) {
        size.checks++;
        size.payloadBytes += keySize(c.key);
      }
      return recorder;
    },
    set(key: Deno.KvKey, value: unknown) {
      withValue(key, value);
      return recorder;
    },
    sum(key: Deno.KvKey, n: bigint) {
      withValue(key, new Deno.KvU64(n));
      return recorder;
    },
    min(key: Deno.KvKey, n: bigint) {
      withValue(key, new Deno.KvU64(n));
      return recorder;
    },
    max(key: Deno.KvKey, n: bigint) {
      withValue(key, new Deno.KvU64(n));
      return recorder;
    },
    delete(key: Deno.KvKey) {
      size.mutations++;
      size.payloadBytes += keySize(key);
      return recorder;
    },
    mutate(...mutations: Deno.KvMutation[]) {
      for (const m of mutations) {
        if (m.type === "delete") recorder.delete(m.key);
        else withValue(m.key, m.type === "set" ? m.value : m.value);
      }
      return recorder;
    },
    enqueue() {
      throw new Error("Postern does not use KV queues (a remote store has none)");
    },
    commit() {
      throw new Error("measureChange: a change must not commit by itself");
    },
  };
  apply(recorder as unknown as Deno.AtomicOperation);
  return size;
}

/** "12 checks, 1 200 mutations, …" for error messages. */
export function describeSize(size: CommitSize): string {
  return `${size.checks} checks, ${size.mutations} mutations, ${size.payloadBytes} bytes, ` +
    `${size.keyBytes} key bytes`;
}
