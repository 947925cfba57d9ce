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

const SIGNED_SET: ReadonlySet<string> = new Set(SIGNED_FIELDS);

/** A field's name as §3.4.2 compares it: WSP before the colon dropped, lower-cased. */
function fieldName(line: string, colon: number): string {
  return lowerAscii(line.slice(0, colon).replace(/[ \t]+$/, ""));
}

/**
 * The fields of a CRLF header block (binary string) that may be signed, each with its folding;
 * the others (Received, the relay's own trace fields: most of a relayed head) are passed over
 * without being cut out or lower-cased, as none of them is ever hashed.
 */
function signableFields(block: string): RawField[] {
  const fields: RawField[] = [];
  let current: RawField | null = null;
  let start = 0;
  while (start < block.length) {
    let end = block.indexOf("\r\n", start);
    if (end < 0) end = block.length;
    if (end > start) {
      const first = block.charCodeAt(start);
      if (first === 32 || first === 9) {
        // A continuation line of the field before it (of a field not signed: skipped with it).
        if (current) current.raw += "\r\n" + block.slice(start, end);
      } else {
        // A line that is no field (no colon) is passed over, and a continuation after it still
        // belongs to the field before it.
        const colon = block.indexOf(":", start);
        if (colon > start && colon < end) {
          const name = fieldName(block.slice(start, colon + 1), colon - start);
          current = SIGNED_SET.has(name) ? { name, raw: block.slice(start, end) } : null;
          if (current) fields.push(current);
        }
      }
    }
    start = end + 2;
  }
  return fields;
}

/** A value that needs more than its outer spaces dropped: folded, a tab, or a run of spaces. */
const VALUE_NEEDS_WORK = /[\r\n\t]| {2}/;

/** RFC 6376 §3.4.2 for a value: unfold, one SP per WSP run, no WSP at either end. */
function relaxedValue(value: string): string {
  if (VALUE_NEEDS_WORK.test(value)) {
    return value.replace(/\r\n/g, "").replace(/[ \t]+/g, " ").replace(/^ | $/g, "");
  }
  const start = value.charCodeAt(0) === 32 ? 1 : 0;
  const end = value.length > start && value.charCodeAt(value.length - 1) === 32
    ? value.length - 1
    : value.length;
  return value.slice(start, end);
}

/** RFC 6376 §3.4.2: lower-case name, unfold, one SP per WSP run, no WSP around the value. */
function relaxedField(raw: string, name?: string): string {
  const colon = raw.indexOf(":");
  return `${name ?? fieldName(raw, colon)}:${relaxedValue(raw.slice(colon + 1))}`;
}

/** `h=` for this header block: each signed field once per occurrence, over-signed ones once more. */
export function signedFieldList(fields: readonly { name: string }[]): string[] {
  const list: string[] = [];
  for (const name of SIGNED_FIELDS) {
    let n = 0;
    for (const f of fields) if (f.name === name) n++;
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
        out += relaxedField(fields[i]!.raw, name) + "\r\n";
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

/** `bytes` in base64, in lines of 72 characters joined by CRLF and a tab. */
function foldedBase64(bytes: Buffer): string {
  const b64 = bytes.toString("base64");
  if (b64.length <= 72) return b64;
  let out = b64.slice(0, 72);
  for (let i = 72; i < b64.length; i += 72) out += "\r\n\t" + b64.slice(i, i + 72);
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
    const fields = signableFields(
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
      const sig = signatures[i]!;
      out += u + foldedBase64(Buffer.from(sig.buffer, sig.byteOffset, sig.length)) + "\r\n";
    }
    return out;
  }
}
