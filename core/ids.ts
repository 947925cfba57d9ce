/**
 * Time-ordered ids (ULID-like: 10 chars of milliseconds, 16 random, Crockford base32). Sorting by
 * id sorts by creation time, which makes KV range scans by id also scans by age.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

/**
 * Random bytes drawn from the system's generator a block at a time: a message takes two ids and
 * two event ids, and one `getRandomValues` call (an op) and a fresh array for each were most of
 * what an id cost.
 */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** The next random byte's value in 0..31: one base32 digit. */
function randomDigit(): number {
  if (poolAt === pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  return pool[poolAt++]! & 31;
}

function randomChars(n: number): string {
  let out = "";
  for (let i = 0; i < n; i++) out += ALPHABET[randomDigit()];
  return out;
}

export function newId(now = Date.now()): string {
  return encodeTime(now) + randomChars(16);
}

/** A short random token (lower-case base32) for ids shown to people. */
export function shortId(prefix: string, length = 16): string {
  return prefix + randomChars(length).toLowerCase();
}

let lastTime = -1;
/** The random part of the id last made, one base32 digit a byte. */
const lastRandom = new Uint8Array(16);
/** The id last made, kept as text: the next one in the same millisecond changes only its tail. */
let lastText = "";

/**
 * Like newId, but strictly increasing within this process even when the clock stands still or
 * steps back (the ULID monotonic rule: same millisecond → random part + 1). Event ids use it so
 * one process's events sort in the order they were committed.
 */
export function monotonicId(now = Date.now()): string {
  if (now > lastTime) {
    lastTime = now;
    let text = encodeTime(lastTime);
    for (let i = 0; i < lastRandom.length; i++) {
      // Headroom so increments within one millisecond never carry out of the random part.
      const d = i === 0 ? randomDigit() & 15 : randomDigit();
      lastRandom[i] = d;
      text += ALPHABET[d];
    }
    return lastText = text;
  }
  let i = lastRandom.length - 1;
  for (; i >= 0; i--) {
    lastRandom[i] = (lastRandom[i]! + 1) & 31;
    if (lastRandom[i] !== 0) break;
  }
  // Digits from the one that did not carry on changed; the ones before it stay as they were.
  const from = Math.max(0, i);
  let text = lastText.slice(0, 10 + from);
  for (let j = from; j < lastRandom.length; j++) text += ALPHABET[lastRandom[j]!];
  return lastText = text;
}

/** The 10-character time prefix of ids made at `ms`: every id made at or after sorts above it. */
export function idTimePrefix(ms: number): string {
  return encodeTime(Math.max(0, Math.floor(ms)));
}

/** Each character code's value in ALPHABET, -1 where it is not one of its digits. */
const CROCKFORD_DIGIT: readonly number[] = Array.from(
  { length: 128 },
  (_, code) => ALPHABET.indexOf(String.fromCharCode(code)),
);

/** The creation time encoded in an id's first 10 characters, or null when it is not an id. */
export function idTime(id: string): number | null {
  // Read for every record a message writes and reads: a table lookup per character, no regex.
  if (id.length < 10) return null;
  let t = 0;
  for (let i = 0; i < 10; i++) {
    const digit = CROCKFORD_DIGIT[id.charCodeAt(i)] ?? -1;
    if (digit < 0) return null;
    t = t * 32 + digit;
  }
  return t;
}
