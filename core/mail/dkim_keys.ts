/**
 * DKIM private keys, parsed once and kept, and the one private-key operation of a signature.
 * Kept apart from dkim.ts (which needs mailauth's body canonicalizer) so the signing workers
 * (dkim_worker.ts) load only node:crypto.
 *
 * @module
 */
import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto";

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

/**
 * Parsed private keys by domain, selector and key version, so a key is parsed once and not per
 * message. A domain's key set comes whole with each use: keys of that domain it no longer holds
 * (rotated out, retired, replaced by a new version) are dropped then, and the map is bounded.
 */
export class DkimKeyCache {
  #byDomain = new Map<string, Map<string, KeyObject>>();
  #size = 0;

  constructor(readonly maxKeys = 1000) {}

  /** The parsed keys for `keys` (all of one message), in order; throws for a key that cannot be parsed. */
  objects(keys: readonly DkimSigningKey[]): KeyObject[] {
    const out: KeyObject[] = [];
    for (const key of keys) {
      const ids = keys.filter((k) => k.domain === key.domain).map(keyId);
      let held = this.#byDomain.get(key.domain);
      if (held) {
        for (const id of held.keys()) {
          if (!ids.includes(id)) {
            held.delete(id);
            this.#size--;
          }
        }
      } else {
        held = new Map();
        this.#byDomain.set(key.domain, held);
      }
      const id = keyId(key);
      let object = held.get(id);
      if (!object) {
        object = createPrivateKey(key.privateKey);
        if (this.#size >= this.maxKeys) {
          this.clear();
          held = new Map();
          this.#byDomain.set(key.domain, held);
        }
        held.set(id, object);
        this.#size++;
      }
      out.push(object);
    }
    return out;
  }

  /** How many parsed keys are held. */
  get size(): number {
    return this.#size;
  }

  clear() {
    this.#byDomain.clear();
    this.#size = 0;
  }
}

function keyId(key: DkimSigningKey): string {
  return `${key.selector}\n${key.algorithm}\n${key.version}`;
}

/** Signs one signing input (the hashed header fields, RFC 6376 §3.7) with a parsed key. */
export function signatureBytes(
  algorithm: DkimAlgorithm,
  object: KeyObject,
  data: Uint8Array,
): Uint8Array {
  return algorithm === "rsa"
    ? sign("sha256", data, object)
    // RFC 8463 §3: Ed25519 signs the SHA-256 of the data (PureEdDSA over the hash).
    : sign(null, createHash("sha256").update(data).digest(), object);
}
