/**
 * Streaming CRLF normalisation. A bare CR or bare LF never leaves Postern (RFC 5321 §2.3.8):
 * each becomes CRLF, so the next hop cannot read a line break we did not mean (SMTP smuggling).
 */
const CR = 13, LF = 10;

export type Normalizer = (chunk: Uint8Array, final?: boolean) => Uint8Array;

export function crlfNormalizer(): Normalizer {
  let pendingCR = false;
  return function normalize(chunk: Uint8Array, final = false): Uint8Array {
    // Worst case every byte is a bare LF and doubles, plus a pending CR from the last chunk.
    const out = new Uint8Array(chunk.length * 2 + 2);
    let o = 0;
    let i = 0;
    if (pendingCR && chunk.length > 0) {
      out[o++] = CR;
      out[o++] = LF;
      if (chunk[0] === LF) i = 1;
      pendingCR = false;
    }
    while (i < chunk.length) {
      // Copy the run up to the next CR or LF in one go; most mail is already CRLF-clean.
      let j = i;
      while (j < chunk.length && chunk[j] !== CR && chunk[j] !== LF) j++;
      if (j > i) {
        out.set(chunk.subarray(i, j), o);
        o += j - i;
      }
      if (j >= chunk.length) break;
      if (chunk[j] === CR) {
        if (j + 1 >= chunk.length) {
          pendingCR = true; // decide when the next chunk shows whether LF follows
          i = j + 1;
          break;
        }
        out[o++] = CR;
        out[o++] = LF;
        i = chunk[j + 1] === LF ? j + 2 : j + 1;
      } else {
        out[o++] = CR;
        out[o++] = LF;
        i = j + 1;
      }
    }
    if (final && pendingCR) {
      out[o++] = CR;
      out[o++] = LF;
      pendingCR = false;
    }
    return out.subarray(0, o);
  };
}

/** What smtpd_forbid_bare_newline = reject refuses: a CR or LF not in a CRLF pair, or a NUL. */
export type BareLineEnding = "CR" | "LF" | "NUL";

export type BareLineEndingFinder = (chunk: Uint8Array, final?: boolean) => BareLineEnding | null;

/**
 * Streaming check for the bytes that make SMTP smuggling possible (RFC 5321 §2.3.8: CR and LF
 * only ever appear together as CRLF). Instead of repairing them, as the normalizer does for HTTP
 * uploads, SMTP submission refuses the message: a client that sends `\n.\n` is either broken or
 * probing, and a repaired message would be one its author did not write. Chunks may split a
 * CRLF anywhere; the verdict is the same however the bytes were cut.
 */
export function bareLineEndingFinder(): BareLineEndingFinder {
  let pendingCR = false;
  return function find(chunk: Uint8Array, final = false): BareLineEnding | null {
    let from = 0;
    if (pendingCR && chunk.length > 0) {
      pendingCR = false;
      if (chunk[0] !== LF) return "CR";
      from = 1;
    }
    // One regular expression over the bytes read as Latin-1 (one character per byte) instead of
    // a loop over each byte: a 1 MB body costs about a millisecond instead of over ten.
    const text = LATIN1.decode(chunk);
    BARE.lastIndex = from;
    const m = BARE.exec(text);
    if (m !== null) {
      if (m[0] !== "\r" || m.index + 1 < text.length) {
        return m[0] === "\0" ? "NUL" : m[0] === "\r" ? "CR" : "LF";
      }
      pendingCR = true; // a CR that ends the chunk: the next one shows whether LF follows
    }
    if (final && pendingCR) return "CR";
    return null;
  };
}

/** Decodes each byte to one character, so indexes in the text are indexes in the bytes. */
const LATIN1 = new TextDecoder("latin1");
/** A CR not followed by LF, an LF not preceded by CR, or a NUL. */
const BARE = /\r(?!\n)|(?<!\r)\n|\0/g;
