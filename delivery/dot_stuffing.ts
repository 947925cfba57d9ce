/**
 * The message data as SMTP sends it (RFC 5321 §4.5.2): a dot that starts a line is doubled, and a
 * bare CR or LF becomes CRLF (a lone CR or LF must never reach a receiver that could read it as a
 * line end: SMTP smuggling), exactly as nodemailer's DataStream writes it. nodemailer walks every
 * byte through a general loop and copies each piece it keeps (`slice` copies a Uint8Array): at
 * 1 MB messages that was a fifth of the relay's main thread. This does the same in one pass that
 * skips four plain bytes at a time (about 1 ms per MB against nodemailer's 5 and a byte-by-byte
 * loop's 1.8), and hands a chunk that needs nothing added on untouched.
 */

const CR = 13, LF = 10, DOT = 46;
/** `prev` before the first byte of the data: a dot there starts a line. */
export const DATA_START = -1;

/** What goes in before a byte: LF (bare CR), LF + dot (bare CR, then a dot), CR, or a dot. */
const INSERT_LF = Uint8Array.of(LF);
const INSERT_LF_DOT = Uint8Array.of(LF, DOT);
const INSERT_CR = Uint8Array.of(CR);
const INSERT_DOT = Uint8Array.of(DOT);

/**
 * `chunk` as sent, given the byte sent before it (`DATA_START` for the first chunk). Returns the
 * chunk itself when nothing is added.
 */
export function dotStuff(chunk: Uint8Array, prev: number): Uint8Array {
  let at: number[] | null = null;
  let what: Uint8Array[] | null = null;
  let added = 0;
  let p = prev;
  const n = chunk.length;
  // Whole 32-bit words with no byte below "/" (no CR, LF or dot) need nothing, unless the byte
  // before them was a CR: tested four bytes at a time (the usual has-less-than bit trick, which
  // may flag a word that has none, never miss one), only flagged words are walked byte by byte.
  const lead = Math.min(n, (4 - (chunk.byteOffset & 3)) & 3);
  const words = (n - lead) >>> 2;
  const w32 = words > 0 ? new Uint32Array(chunk.buffer, chunk.byteOffset + lead, words) : null;
  let i = 0;
  for (let k = -1; k <= words; k++) {
    // k = -1: the bytes before the first whole word; k = words: those after the last.
    let end: number;
    if (k < 0) end = lead;
    else if (k === words) end = n;
    else {
      const w = w32![k]!;
      if (p !== CR && ((w - 0x2f2f2f2f) & ~w & 0x80808080) === 0) {
        p = w >>> 24; // little-endian: the word's last byte
        i += 4;
        continue;
      }
      end = i + 4;
    }
    for (; i < end; i++) {
      const byte = chunk[i]!;
      let insert: Uint8Array | null = null;
      if (p === CR) {
        if (byte !== LF) insert = byte === DOT ? INSERT_LF_DOT : INSERT_LF;
      } else if (byte === LF) insert = INSERT_CR;
      else if (byte === DOT && (p === LF || p === DATA_START)) insert = INSERT_DOT;
      p = byte;
      if (insert === null) continue;
      (at ??= []).push(i);
      (what ??= []).push(insert);
      added += insert.length;
    }
  }
  if (at === null) return chunk;
  const out = new Uint8Array(chunk.length + added);
  let from = 0, o = 0;
  for (let k = 0; k < at.length; k++) {
    const i = at[k]!;
    out.set(chunk.subarray(from, i), o);
    o += i - from;
    out.set(what![k]!, o);
    o += what![k]!.length;
    from = i;
  }
  out.set(chunk.subarray(from), o);
  return out;
}

/** What ends the data after its last byte: the line is closed if it is open, then ".". */
export function dataEnd(last: number): Uint8Array {
  if (last === LF) return Uint8Array.of(DOT, CR, LF);
  if (last === CR) return Uint8Array.of(LF, DOT, CR, LF);
  return Uint8Array.of(CR, LF, DOT, CR, LF);
}
