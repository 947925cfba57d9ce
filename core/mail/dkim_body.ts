/**
 * The DKIM body hash (`bh=`) under relaxed body canonicalization (RFC 6376 §3.4.4), fed as the
 * body streams past. Lines that need no change (no HTAB, no run of spaces, no space before the
 * CRLF: nearly all of a typical body) are hashed where they lie, in runs, and only the others are
 * rewritten; mailauth's canonicalizer does the same but walks each byte through a switch, which
 * made it the main cost of signing a large message (about 6 ms per MB here, against 1–2).
 * tests check it against mailauth's byte for byte (dkim_body_test.ts).
 *
 * Intake hands it CRLF-normalized bytes (core/mail/line_endings.ts); a bare CR or LF is content.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";

const CR = 13, LF = 10, SP = 32, HTAB = 9;
const CRLF = new Uint8Array([CR, LF]);

export class RelaxedBodyHash {
  #hash: Hash = createHash("sha256");
  /**
   * The start of a line carried over from earlier chunks (no CRLF seen for it yet), as parts:
   * a long line spread over many chunks is joined once, not once per chunk.
   */
  #partial: Uint8Array[] = [];
  /** Empty lines seen at the end so far: hashed only once more content follows (§3.4.4 b). */
  #pendingEmpty = 0;

  update(chunk: Uint8Array) {
    if (chunk.length === 0) return;
    if (this.#partial.length > 0) {
      // Only the carried line is joined to the chunk; the joined line is processed alone.
      const last = this.#partial[this.#partial.length - 1]!;
      const end = lineEnd(chunk, last[last.length - 1] === CR);
      if (end < 0) {
        this.#partial.push(chunk.slice());
        return;
      }
      this.#partial.push(chunk.subarray(0, end));
      const line = Buffer.concat(this.#partial);
      this.#partial = [];
      this.#lines(line, true);
      chunk = chunk.subarray(end);
    }
    this.#lines(chunk, false);
  }

  /** The base64 body hash, once every byte was fed. */
  digest(): string {
    if (this.#partial.length > 0) {
      // The last line has no CRLF: canonicalized as any line, then given one (§3.4.4 b).
      const rest = Buffer.concat(this.#partial);
      const line = canonicalLine(rest, rest.length);
      this.#partial = [];
      if (line.length > 0) {
        this.#emit(line);
        this.#hash.update(CRLF);
      }
    }
    // Empty lines still held are the body's last: dropped.
    return this.#hash.digest("base64");
  }

  /**
   * Hashes the complete lines of `buf` and carries over its unterminated end. `whole`: `buf`
   * is one line and its CRLF (from a joined carry-over).
   */
  #lines(buf: Uint8Array, whole: boolean) {
    let runStart = 0; // start of the lines not yet hashed, all needing no change
    let lineStart = 0;
    let fix = false;
    let prev = -1;
    const n = buf.length;
    for (let i = 0; i < n; i++) {
      const c = buf[i]!;
      if (c > SP) {
        prev = c;
        continue;
      }
      if (c === SP) {
        if (prev === SP || prev === HTAB) fix = true;
      } else if (c === HTAB) {
        fix = true;
      } else if (c === LF && prev === CR) {
        // Line [lineStart, i + 1) ends here.
        const contentEnd = i - 1;
        if (contentEnd - 1 >= lineStart) {
          const last = buf[contentEnd - 1];
          if (last === SP || last === HTAB) fix = true;
        }
        if (contentEnd === lineStart) {
          // An empty line: the unchanged lines before it go now, it is held.
          this.#run(buf, runStart, lineStart);
          this.#pendingEmpty++;
          runStart = i + 1;
        } else if (fix) {
          this.#run(buf, runStart, lineStart);
          const line = canonicalLine(buf.subarray(lineStart), contentEnd - lineStart);
          if (line.length === 0) this.#pendingEmpty++;
          else {
            this.#emit(line);
            this.#hash.update(CRLF);
          }
          runStart = i + 1;
        }
        lineStart = i + 1;
        fix = false;
      }
      prev = c;
    }
    this.#run(buf, runStart, lineStart);
    if (lineStart < n) {
      if (whole) throw new Error("internal: a joined line must end in CRLF");
      this.#partial = [buf.slice(lineStart)];
    }
  }

  /** Hashes unchanged whole lines (none of them empty) as they lie. */
  #run(buf: Uint8Array, start: number, end: number) {
    if (end <= start) return;
    this.#flushEmpty();
    this.#hash.update(buf.subarray(start, end));
  }

  /** Hashes a canonical, non-empty line's content (its CRLF follows). */
  #emit(line: Uint8Array) {
    this.#flushEmpty();
    this.#hash.update(line);
  }

  #flushEmpty() {
    for (; this.#pendingEmpty > 0; this.#pendingEmpty--) this.#hash.update(CRLF);
  }
}

/** Where the first CRLF in `buf` ends (the index after its LF), or -1; `afterCr`: a CR preceded. */
function lineEnd(buf: Uint8Array, afterCr: boolean): number {
  if (afterCr && buf[0] === LF) return 1;
  for (let i = buf.indexOf(CR); i >= 0 && i + 1 < buf.length; i = buf.indexOf(CR, i + 1)) {
    if (buf[i + 1] === LF) return i + 2;
  }
  return -1;
}

/**
 * §3.4.4 a: the first `length` bytes of `line` (its content, without the CRLF) with each run of
 * WSP made one SP and WSP at the end removed.
 */
function canonicalLine(line: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  let wsp = false;
  for (let i = 0; i < length; i++) {
    const c = line[i]!;
    if (c === SP || c === HTAB) {
      wsp = true;
      continue;
    }
    if (wsp) {
      out[o++] = SP;
      wsp = false;
    }
    out[o++] = c;
  }
  return out.subarray(0, o);
}
