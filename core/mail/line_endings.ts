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
    // The typed array's own indexOf per line ending instead of a loop over each byte (a 1 MB
    // body costs about a millisecond instead of over ten) and instead of decoding each chunk to
    // text for a regular expression (that decode was ~1 % of the main thread at 2 KB messages).
    let bareLF = -1;
    for (let p = indexOf(chunk, LF, from); p >= 0; p = indexOf(chunk, LF, p + 1)) {
      if (p === 0 || chunk[p - 1] !== CR) {
        bareLF = p;
        break;
      }
    }
    let bareCR = -1;
    let crAtEnd = false;
    for (let p = indexOf(chunk, CR, from); p >= 0; p = indexOf(chunk, CR, p + 1)) {
      if (bareLF >= 0 && p > bareLF) break;
      if (p + 1 === chunk.length) crAtEnd = true; // the next chunk shows whether LF follows
      else if (chunk[p + 1] !== LF) bareCR = p;
      else continue;
      break;
    }
    const nul = indexOf(chunk, 0, from);
    // The first of them in the bytes is the verdict.
    let found: BareLineEnding | null = bareLF >= 0 ? "LF" : null;
    let at = bareLF >= 0 ? bareLF : chunk.length;
    if (bareCR >= 0 && bareCR < at) {
      found = "CR";
      at = bareCR;
    }
    if (nul >= 0 && nul < at) found = "NUL";
    if (found !== null) return found;
    if (crAtEnd) pendingCR = true;
    if (final && pendingCR) return "CR";
    return null;
  };
}

const u8IndexOf = Uint8Array.prototype.indexOf;

/**
 * Uint8Array's own indexOf, also for a node Buffer (the SMTP server's chunks are Buffers, whose
 * indexOf runs node's polyfill in JS first).
 */
function indexOf(bytes: Uint8Array, byte: number, from: number): number {
  return u8IndexOf.call(bytes, byte, from);
}
