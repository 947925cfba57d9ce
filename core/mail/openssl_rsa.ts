/**
 * RSA-SHA256 signatures (PKCS #1 v1.5, as DKIM's rsa-sha256) made by the system's OpenSSL
 * through Deno's FFI. Deno's own RSA (node:crypto and WebCrypto alike) took 1.5–1.7 ms of CPU per
 * RSA-2048 signature here, OpenSSL 0.28 ms, and the signatures are the same bytes (v1.5 padding
 * is deterministic; openssl_rsa_test.ts compares them). Where libcrypto cannot be loaded (not
 * installed, or the relay runs without --allow-ffi) {@linkcode openSsl} is null and node:crypto
 * signs instead (dkim_keys.ts).
 *
 * Used through dkim_keys.ts (`fastestKey`) by the signing workers (dkim_worker.ts) and by the
 * main thread where it signs itself (no workers): a key is read into OpenSSL once and freed when
 * the key cache drops it.
 *
 * @module
 */

const SYMBOLS = {
  BIO_new_mem_buf: { parameters: ["buffer", "i32"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_get_size: { parameters: ["pointer"], result: "i32" },
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_sha256: { parameters: [], result: "pointer" },
  EVP_DigestSignInit: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  EVP_DigestSign: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** An RSA private key held by OpenSSL. */
export class OpenSslRsaKey {
  #lib: Lib;
  #pkey: Deno.PointerValue;
  #size: number;

  constructor(lib: Lib, pem: string) {
    const bytes = new TextEncoder().encode(pem);
    const bio = lib.BIO_new_mem_buf(bytes, bytes.length);
    if (bio === null) throw new Error("OpenSSL: cannot allocate a BIO");
    const pkey = lib.PEM_read_bio_PrivateKey(bio, null, null, null);
    lib.BIO_free(bio);
    if (pkey === null) throw new Error("OpenSSL: the private key does not parse");
    this.#lib = lib;
    this.#pkey = pkey;
    this.#size = lib.EVP_PKEY_get_size(pkey);
  }

  /** The RSASSA-PKCS1-v1_5 SHA-256 signature of `data`. */
  sign(data: Uint8Array): Uint8Array {
    if (this.#pkey === null) throw new Error("OpenSSL: the key was freed");
    const lib = this.#lib;
    const ctx = lib.EVP_MD_CTX_new();
    if (ctx === null) throw new Error("OpenSSL: cannot allocate a digest context");
    try {
      if (lib.EVP_DigestSignInit(ctx, null, lib.EVP_sha256(), null, this.#pkey) !== 1) {
        throw new Error("OpenSSL: EVP_DigestSignInit failed");
      }
      const signature = new Uint8Array(this.#size);
      const length = new BigUint64Array([BigInt(signature.length)]);
      const ok = lib.EVP_DigestSign(
        ctx,
        signature,
        new Uint8Array(length.buffer),
        data,
        BigInt(data.length),
      );
      if (ok !== 1) throw new Error("OpenSSL: EVP_DigestSign failed");
      return signature.subarray(0, Number(length[0]));
    } finally {
      lib.EVP_MD_CTX_free(ctx);
    }
  }

  /** Gives the key's memory back to OpenSSL; the key signs no more. */
  free() {
    if (this.#pkey === null) return;
    this.#lib.EVP_PKEY_free(this.#pkey);
    this.#pkey = null;
  }
}

let loaded: { lib: Lib } | null | undefined;

/** The system's libcrypto (OpenSSL 3), or null where it cannot be loaded. */
export function openSsl(): { key(pem: string): OpenSslRsaKey } | null {
  if (loaded === undefined) {
    loaded = null;
    // Asked first: without the permission, dlopen would prompt on a terminal.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    for (const name of ["libcrypto.so.3", "libcrypto.3.dylib"]) {
      try {
        loaded = { lib: Deno.dlopen(name, SYMBOLS).symbols };
        break;
      } catch {
        // Not here, or no --allow-ffi: node:crypto signs instead.
      }
    }
  }
  const found = loaded;
  return found && { key: (pem: string) => new OpenSslRsaKey(found.lib, pem) };
}
