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
 * that sizes each key as Deno encodes it and each value as V8 serializes it.
 */
import { serialize } from "node:v8";

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

/** The bytes of `key` as Deno KV encodes it (FoundationDB's tuple layer). */
export function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += 2 + escapedLength(encoder.encode(part));
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

/** The size of one `set` of `value` at `key`, as the client counts it. */
export function setSize(key: Deno.KvKey, value: unknown): CommitSize {
  const k = keySize(key);
  return { checks: 0, mutations: 1, payloadBytes: 2 * k + valueSize(value), keyBytes: k };
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
