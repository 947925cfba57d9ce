/**
 * DKIM private keys, parsed once and kept, and the one private-key operation of a signature.
 * Kept apart from dkim.ts (which needs the body canonicalizer) so the signing workers
 * (dkim_worker.ts) load only node:crypto and OpenSSL.
 *
 * @module
 */
import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { openSsl } from "./openssl_rsa.ts";

export type DkimAlgorithm = "rsa" | "ed25519";

/** A key to sign with; `privateKey` is PKCS#8 PEM and never leaves the process in a reply or log. */
export interface DkimSigningKey {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  privateKey: string;
  /**
   * Which key this is under its selector (a domain removed and added again reuses selector
   * names): parsed keys are cached by domain, selector and version.
   */
  version: string;
}

/** A private key ready to sign with. */
export interface PreparedKey {
  /** The signature over one signing input (the hashed header fields, RFC 6376 §3.7). */
  sign(data: Uint8Array): Uint8Array;
  /** Gives back what the key holds outside the JS heap. */
  free?(): void;
}

/** A key parsed by node:crypto. */
export function nodeKey(key: DkimSigningKey): PreparedKey {
  const object = createPrivateKey(key.privateKey);
  return { sign: (data) => signatureBytes(key.algorithm, object, data) };
}

/**
 * A key parsed by the fastest signer here: RSA by the system's OpenSSL where it loads (0.25–0.3
 * ms per RSA-2048 signature against 1.5–1.7 for node:crypto), the rest by node:crypto.
 */
export function fastestKey(key: DkimSigningKey): PreparedKey {
  const ssl = key.algorithm === "rsa" ? openSsl() : null;
  return ssl ? ssl.key(key.privateKey) : nodeKey(key);
}

/**
 * Parsed private keys by domain, selector and key version, so a key is parsed once and not per
 * message. A domain's key set comes whole with each use: keys of that domain it no longer holds
 * (rotated out, retired, replaced by a new version) are dropped then, and the map is bounded.
 */
export class DkimKeyCache {
  #byDomain = new Map<string, Map<string, PreparedKey>>();
  #size = 0;

  constructor(
    readonly prepare: (key: DkimSigningKey) => PreparedKey = nodeKey,
    readonly maxKeys = 1000,
  ) {}

  /**
   * The last key set asked for and its prepared keys: a domain's keys come as one array from a
   * cache (core/store/domains.ts signingKeysFor), so a run of messages of one domain asks with
   * the same array, and nothing was dropped between two calls with it.
   */
  #last: { keys: readonly DkimSigningKey[]; out: PreparedKey[] } | null = null;

  /** The prepared keys for `keys` (all of one message), in order; throws for one that does not parse. */
  prepared(keys: readonly DkimSigningKey[]): PreparedKey[] {
    const last = this.#last;
    if (last !== null && last.keys === keys) return last.out;
    this.#last = null;
    const out = this.#prepare(keys);
    this.#last = { keys, out };
    return out;
  }

  #prepare(keys: readonly DkimSigningKey[]): PreparedKey[] {
    const out: PreparedKey[] = [];
    const domains = new Set<string>();
    for (const key of keys) {
      let held = this.#byDomain.get(key.domain);
      if (!held) {
        held = new Map();
        this.#byDomain.set(key.domain, held);
      }
      if (!domains.has(key.domain)) {
        domains.add(key.domain);
        const ids = keys.filter((k) => k.domain === key.domain).map(keyId);
        for (const [id, stale] of held) {
          if (!ids.includes(id)) this.#drop(held, id, stale);
        }
      }
      const id = keyId(key);
      let prepared = held.get(id);
      if (!prepared) {
        prepared = this.prepare(key);
        held.set(id, prepared);
        this.#size++;
      }
      out.push(prepared);
    }
    // Over the bound: every other domain's keys go (they are parsed again when next used).
    if (this.#size > this.maxKeys) {
      for (const [domain, held] of this.#byDomain) {
        if (domains.has(domain)) continue;
        for (const [id, stale] of held) this.#drop(held, id, stale);
        this.#byDomain.delete(domain);
      }
    }
    return out;
  }

  /** How many parsed keys are held. */
  get size(): number {
    return this.#size;
  }

  #drop(held: Map<string, PreparedKey>, id: string, key: PreparedKey) {
    held.delete(id);
    this.#size--;
    key.free?.();
  }
}

function keyId(key: DkimSigningKey): string {
  return `${key.selector}\n${key.algorithm}\n${key.version}`;
}

/** Signs one signing input (the hashed header fields, RFC 6376 §3.7) with a parsed key. */
function signatureBytes(
  algorithm: DkimAlgorithm,
  object: KeyObject,
  data: Uint8Array,
): Uint8Array {
  return algorithm === "rsa"
    ? sign("sha256", data, object)
    // RFC 8463 §3: Ed25519 signs the SHA-256 of the data (PureEdDSA over the hash).
    : sign(null, createHash("sha256").update(data).digest(), object);
}
