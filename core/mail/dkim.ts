/**
 * DKIM signing (RFC 6376, relaxed/relaxed), fed as the body streams past.
 *
 * Instead of mailauth's `dkimSign`, which builds `h=` from the header fields present and so cannot
 * over-sign (list `from` once more than it occurs, RFC 6376 §8.15, so that a second From added in
 * transit breaks the signature), the body hash (dkim_body.ts, checked against mailauth's) and the
 * header hash are made here (§3.4.2 relaxed header canonicalization, §3.7 hash, §5.4.2 field
 * selection). The body is hashed chunk by chunk as intake writes it to KV, so a 50 MB message is
 * never held whole. The private-key operation goes to a DkimSignatureMaker: in the relay the
 * pool (dkim_pool.ts), which signs in its workers or, with none, on the calling thread. Both mailauth and dkimpy verify the result (tests/dkim_test.ts).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { generateKeyPairSync } from "node:crypto";
import { RelaxedBodyHash } from "./dkim_body.ts";
import { binaryToBytes, bytesToBinary } from "./headers.ts";
import { type DkimAlgorithm, DkimKeyCache, type DkimSigningKey, fastestKey } from "./dkim_keys.ts";

export type { DkimAlgorithm, DkimSigningKey } from "./dkim_keys.ts";

/**
 * Header fields signed when present: RFC 6376 §5.4.1's recommendation plus the MIME fields whose
 * change alters what is displayed.
 */
export const SIGNED_FIELDS: readonly string[] = [
  "from",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "to",
  "cc",
  "in-reply-to",
  "references",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "list-id",
  "list-unsubscribe",
  "list-unsubscribe-post",
];

/** Fields listed once more than they occur, so none can be added after signing (§8.15). */
export const OVERSIGNED_FIELDS: readonly string[] = ["from"];

const RSA_BITS = 2048;

/** A fresh key pair: the private key as PKCS#8 PEM, the public key as the DNS `p=` value. */
export function generateDkimKey(
  algorithm: DkimAlgorithm,
): { privateKey: string; publicKey: string } {
  if (algorithm === "rsa") {
    const pair = generateKeyPairSync("rsa", {
      modulusLength: RSA_BITS,
      publicKeyEncoding: { type: "spki", format: "der" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    return { privateKey: pair.privateKey, publicKey: pair.publicKey.toString("base64") };
  }
  const pair = generateKeyPairSync("ed25519", {
    publicKeyEncoding: { type: "spki", format: "der" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  // RFC 8463 §4.2: p= holds the bare 32-byte key, not the SubjectPublicKeyInfo around it.
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey.subarray(-32).toString("base64"),
  };
}

/** The TXT value to publish at `<selector>._domainkey.<domain>`. */
export function dkimTxtValue(algorithm: DkimAlgorithm, publicKey: string): string {
  return `v=DKIM1; k=${algorithm}; p=${publicKey}`;
}

/** One header field as it stands in the message: its lower-cased name and its raw lines. */
interface RawField {
  name: string;
  raw: string;
}

/** ASCII letters lower-cased, other bytes kept (toLowerCase would also fold Latin-1 letters). */
function lowerAscii(s: string): string {
  // Field names are nearly always ASCII, where toLowerCase does the same without a callback per
  // letter.
  if (!NON_ASCII.test(s)) return s.toLowerCase();
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Splits a CRLF header block (binary string) into fields, keeping each field's folding. */
function rawFields(block: string): RawField[] {
  const fields: RawField[] = [];
  for (const line of block.split("\r\n")) {
    if (line === "") continue;
    if ((line[0] === " " || line[0] === "\t") && fields.length > 0) {
      fields[fields.length - 1]!.raw += "\r\n" + line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push({ name: lowerAscii(line.slice(0, colon).replace(/[ \t]+$/, "")), raw: line });
  }
  return fields;
}

/** RFC 6376 §3.4.2: lower-case name, unfold, one SP per WSP run, no WSP around the value. */
function relaxedField(raw: string): string {
  const colon = raw.indexOf(":");
  const name = lowerAscii(raw.slice(0, colon).replace(/[ \t]+$/, ""));
  const value = raw.slice(colon + 1).replace(/\r\n/g, "").replace(/[ \t]+/g, " ").replace(
    /^ | $/g,
    "",
  );
  return `${name}:${value}`;
}

/** `h=` for this header block: each signed field once per occurrence, over-signed ones once more. */
export function signedFieldList(fields: readonly { name: string }[]): string[] {
  const list: string[] = [];
  for (const name of SIGNED_FIELDS) {
    let n = fields.filter((f) => f.name === name).length;
    if (OVERSIGNED_FIELDS.includes(name)) n++;
    for (let i = 0; i < n; i++) list.push(name);
  }
  return list;
}

/** §5.4.2: each listed name takes the last instance not yet used; a missing one adds nothing. */
function canonicalHeaders(fields: readonly RawField[], names: readonly string[]): string {
  const used = new Set<number>();
  let out = "";
  for (const name of names) {
    for (let i = fields.length - 1; i >= 0; i--) {
      if (fields[i]!.name === name && !used.has(i)) {
        used.add(i);
        out += relaxedField(fields[i]!.raw) + "\r\n";
        break;
      }
    }
  }
  return out;
}

/** Joins tags into a header, folding between tags to keep lines short. */
function foldTags(tags: string[]): string {
  let out = "DKIM-Signature:";
  let lineLength = out.length;
  for (const [i, tag] of tags.entries()) {
    const piece = tag + (i < tags.length - 1 ? ";" : "");
    if (lineLength + 1 + piece.length > 78 && lineLength > 20) {
      out += "\r\n\t" + piece;
      lineLength = 1 + piece.length;
    } else {
      out += " " + piece;
      lineLength += 1 + piece.length;
    }
  }
  return out;
}

/** What makes the signatures: here (the default) or in a worker pool (core/mail/dkim_pool.ts). */
export interface DkimSignatureMaker {
  /** One signature per key over `data[i]`; rejects when it cannot sign now. */
  sign(keys: readonly DkimSigningKey[], data: readonly Uint8Array[]): Promise<Uint8Array[]>;
}

/** Signs on the calling thread with its own key cache (RSA by OpenSSL where it loads). */
export class LocalSignatureMaker implements DkimSignatureMaker {
  #cache = new DkimKeyCache(fastestKey);

  sign(keys: readonly DkimSigningKey[], data: readonly Uint8Array[]): Promise<Uint8Array[]> {
    try {
      return Promise.resolve(this.#cache.prepared(keys).map((k, i) => k.sign(data[i]!)));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

const localMaker = new LocalSignatureMaker();

/**
 * Signs one message for a set of keys (several keys give several signatures, e.g. RSA and
 * Ed25519, RFC 8463 §3). Feed the body with {@linkcode DkimSigner.update} as it streams; call
 * {@linkcode DkimSigner.sign} once with the final header block. The body hash and the header
 * canonicalization are done here; only the private-key operation goes to `maker`.
 */
export class DkimSigner {
  #body = new RelaxedBodyHash();

  constructor(
    readonly keys: readonly DkimSigningKey[],
    readonly maker: DkimSignatureMaker = localMaker,
  ) {}

  /** Body bytes, after the blank line that ends the header section, in order. */
  update(bytes: Uint8Array) {
    if (bytes.length > 0) {
      this.#body.update(bytes);
    }
  }

  /**
   * The DKIM-Signature fields to put in front of the message, each ending in CRLF.
   * `headerBlock` is the complete header section (CRLF line endings, without the blank line), as
   * bytes or as a binary string (one char per byte).
   * Rejects when no signature can be made now (a key that does not parse, a busy or failed pool).
   */
  async sign(headerBlock: Uint8Array | string, now: Date): Promise<string> {
    const bodyHash = this.#body.digest();
    const fields = rawFields(
      typeof headerBlock === "string" ? headerBlock : bytesToBinary(headerBlock),
    );
    const names = signedFieldList(fields);
    const signed = canonicalHeaders(fields, names);
    const unsigned = this.keys.map((key) =>
      foldTags([
        "v=1",
        `a=${key.algorithm}-sha256`,
        "c=relaxed/relaxed",
        `d=${key.domain}`,
        `s=${key.selector}`,
        `t=${Math.floor(now.getTime() / 1000)}`,
        `h=${names.join(":")}`,
        `bh=${bodyHash}`,
        "b=",
      ])
    );
    // §3.7: the signature field itself is hashed last, with an empty b= and no CRLF.
    // Arrays of their own (not views of Buffer's shared pool), so a worker is sent only these bytes.
    const data = unsigned.map((u) => binaryToBytes(signed + relaxedField(u)));
    const signatures = await this.maker.sign(this.keys, data);
    let out = "";
    for (const [i, u] of unsigned.entries()) {
      const b64 = Buffer.from(signatures[i]!).toString("base64");
      out += `${u}${b64.match(/.{1,72}/g)!.join("\r\n\t")}\r\n`;
    }
    return out;
  }
}
