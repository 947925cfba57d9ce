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

function randomChars(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

export function newId(now = Date.now()): string {
  return encodeTime(now) + randomChars(16);
}

/** A short random token (lower-case base32) for ids shown to people. */
export function shortId(prefix: string, length = 16): string {
  return prefix + randomChars(length).toLowerCase();
}
