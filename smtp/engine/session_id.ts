/**
 * The id of an inbound session, as smtp-server makes it (16 lower-case base32 digits, 80 random
 * bits) but drawn from a pool of random bytes: smtp-server took 10 fresh bytes per connection
 * and went through hex and a BigInt to write them in base 32.
 *
 * @module
 */
const DIGITS = "0123456789abcdefghijklmnopqrstuv";
const pool = new Uint8Array(4096);
let at = pool.length;

export function sessionId(): string {
  if (at + 16 > pool.length) {
    crypto.getRandomValues(pool);
    at = 0;
  }
  let id = "";
  for (let i = 0; i < 16; i++) id += DIGITS[pool[at++]! & 31];
  return id;
}
