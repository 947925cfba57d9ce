/**
 * Encryption at rest for the secrets the server must be able to use again (webhook signing
 * secrets, DKIM private keys), so a copy of the KV file alone gives none of them away. AES-256-GCM
 * through WebCrypto under a key kept outside the KV file: POSTERN_SECRET_KEY, or a key generated
 * once into `<dataDir>/secret.key` with mode 0600. Each sealed value is bound to what it belongs to
 * (the additional data, e.g. `webhook:<id>`), so a ciphertext moved to another record does not
 * open. A value written before encryption (no `enc1:` prefix) opens as itself: old stores keep
 * working and are sealed at start (sealStoredSecrets in the stores that hold them).
 */
import { Buffer } from "node:buffer";

const PREFIX = "enc1:";
const KEY_FILE = "secret.key";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(bytes: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString(
    "base64url",
  );
}

export class SecretBox {
  readonly #key: CryptoKey;
  /** Names the key in each sealed value, so a wrong key is told apart from a damaged value. */
  readonly keyId: string;

  private constructor(key: CryptoKey, keyId: string) {
    this.#key = key;
    this.keyId = keyId;
  }

  /** A box under key material of any length (HKDF-SHA-256 makes the AES key of it). */
  static async fromMaterial(material: Uint8Array<ArrayBuffer>): Promise<SecretBox> {
    const base = await crypto.subtle.importKey("raw", material, "HKDF", false, ["deriveKey"]);
    const key = await crypto.subtle.deriveKey(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: new Uint8Array(0),
        info: encoder.encode("postern secret box v1"),
      },
      base,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
    const digest = await crypto.subtle.digest("SHA-256", material);
    return new SecretBox(key, b64(digest).slice(0, 8));
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }

  /** `enc1:<key id>:<iv>:<ciphertext and tag>`, bound to `context`. */
  async seal(plain: string, context: string): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: encoder.encode(context) },
      this.#key,
      encoder.encode(plain),
    );
    return `${PREFIX}${this.keyId}:${b64(iv)}:${b64(sealed)}`;
  }

  /** The plaintext of a sealed value (a value stored before encryption is returned as is). */
  async open(stored: string, context: string): Promise<string> {
    if (!SecretBox.isSealed(stored)) return stored;
    const [keyId, iv, data] = stored.slice(PREFIX.length).split(":");
    if (keyId !== this.keyId) {
      throw new Error(
        `a secret was sealed under another key (${keyId}, this one is ${this.keyId}): ` +
          "POSTERN_SECRET_KEY or <dataDir>/secret.key changed",
      );
    }
    const plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: new Uint8Array(Buffer.from(iv ?? "", "base64url")),
        additionalData: encoder.encode(context),
      },
      this.#key,
      new Uint8Array(Buffer.from(data ?? "", "base64url")),
    );
    return decoder.decode(plain);
  }
}

/**
 * The box for this server: under `secretKey` when set, else under `<dataDir>/secret.key`, created
 * on first start with mode 0600.
 */
export async function openSecretBox(
  options: { secretKey?: string | undefined; dataDir: string },
): Promise<SecretBox> {
  if (options.secretKey) return await SecretBox.fromMaterial(encoder.encode(options.secretKey));
  const path = `${options.dataDir}/${KEY_FILE}`;
  // Written whole under a private name, then linked into place: a second node starting at the
  // same moment finds either no key file or a complete one, and a link never replaces a key.
  const draft = `${path}.${b64(crypto.getRandomValues(new Uint8Array(6)))}`;
  try {
    await Deno.writeTextFile(draft, b64(crypto.getRandomValues(new Uint8Array(32))) + "\n", {
      createNew: true,
      mode: 0o600,
    });
    await Deno.link(draft, path);
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  } finally {
    await Deno.remove(draft).catch(() => {});
  }
  await Deno.chmod(path, 0o600);
  const text = (await Deno.readTextFile(path)).trim();
  if (text.length < 32) {
    throw new Error(`${path} holds no key (expected 32 random bytes, base64); restore it`);
  }
  return await SecretBox.fromMaterial(encoder.encode(text));
}
