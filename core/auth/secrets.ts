/**
 * Secret generation and slow hashing. Keys are 192 random bits behind a recognisable prefix; only
 * an scrypt hash is stored (node:crypto's scrypt: a platform primitive, no dependency needed).
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { createHash } from "node:crypto";
import { metrics } from "../metrics.ts";

/** scrypt cost (RFC 7914): N=2^15, r=8, p=1 is the OWASP minimum for interactive logins. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LENGTH = 32;

export interface SecretHash {
  algorithm: "scrypt";
  salt: string;
  hash: string;
  N: number;
  r: number;
  p: number;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString("base64url");
}

function derive(secret: string, salt: Buffer, params: { N: number; r: number; p: number }) {
  metrics.secretDerivations.inc();
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(
      secret,
      salt,
      KEY_LENGTH,
      { ...params, maxmem: SCRYPT.maxmem },
      (err, key) => err ? reject(err) : resolve(key),
    )
  );
}

export async function hashSecret(secret: string): Promise<SecretHash> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt, SCRYPT);
  return {
    algorithm: "scrypt",
    salt: salt.toString("base64"),
    hash: key.toString("base64"),
    N: SCRYPT.N,
    r: SCRYPT.r,
    p: SCRYPT.p,
  };
}

export async function verifySecret(secret: string, stored: SecretHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, "base64");
  const actual = await derive(secret, Buffer.from(stored.salt, "base64"), stored);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** A fast digest, for high-entropy tokens (the admin token) and cache keys; never for passwords. */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

/** Constant-time comparison of two strings of any length. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/**
 * How a username given at login is written to the log. Only a credential's username (`cr_…`, an
 * identifier) is logged as typed: an API key typed into the username field names its credential
 * and nothing more, and anything else (a password in the wrong field, say) is logged as a short
 * digest that lets an operator tell repeats apart without reading it.
 */
export function usernameForLog(username: string): Record<string, string> {
  if (/^cr_[a-z0-9]{16}$/.test(username)) return { username };
  const key = /^pst_([a-z0-9]{16})_/.exec(username);
  if (key) return { credential: `cr_${key[1]}`, username_was: "api_key" };
  return { username_sha256: sha256(username).slice(0, 12) };
}
