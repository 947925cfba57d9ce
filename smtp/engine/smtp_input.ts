/**
 * What an SMTP client sends, cut into command lines and message data, without any I/O: bytes go
 * in with `push`, and each `next()` says what the connection has to act on next. It replaces
 * smtp-server's SMTPStream (a node:stream Writable fed through `pipe`, and a PassThrough per
 * message) for our own listeners, byte for byte: lines are split on CRLF or LF, a line over the
 * limit is an error whether or not its end has come, message data is dot-unstuffed and ends at
 * CRLF.CRLF exactly where SMTPStream's scan ends it (its quirks included: only ".." at the start
 * of a line loses a dot, and the data's second byte is never taken for the start of a line), and
 * the bytes after the end are commands again. smtp_input_test.ts checks it against SMTPStream.
 *
 * Ported from smtp-server 3.21.6 lib/smtp-stream.js (MIT, Andris Reinman).
 *
 * @module
 */

/** Nothing to act on until more bytes come. */
export const NEED_MORE = 0;
/** A command line (without its line ending) is in `line`. */
export const LINE = 1;
/** Message data is in `chunk` (dot-unstuffed). */
export const DATA = 2;
/** The message ended; its last data (possibly empty) is in `chunk`. Command mode again. */
export const DATA_END = 3;
/** A command line, or the start of one, over the limit; what was pending is dropped. */
export const TOO_LONG = 4;
/** A bare LF ended a command line (only when bare LFs are refused); nothing more is read. */
export const BARE_LF = 5;

export type InputEvent =
  | typeof NEED_MORE
  | typeof LINE
  | typeof DATA
  | typeof DATA_END
  | typeof TOO_LONG
  | typeof BARE_LF;

const EMPTY = new Uint8Array(0);
const CR = 13;
const LF = 10;
const DOT = 46;

const indexOf = Uint8Array.prototype.indexOf;

export class SmtpInput {
  /** The command line of the last LINE. */
  line: Uint8Array = EMPTY;
  /** The data of the last DATA or DATA_END. */
  chunk: Uint8Array = EMPTY;
  /** Message bytes handed out since startData (what SMTPStream counts as dataBytes). */
  dataBytes = 0;
  dataMode = false;

  readonly #maxLine: number;
  readonly #rejectBareLf: boolean;
  /** Bytes not yet taken: #buf from #pos. */
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  /** The byte before #pos in the stream (for a bare LF at the start of a chunk). */
  #prev = -1;
  /** Data mode: the last bytes of the previous chunk, held back until more comes. */
  #held: Uint8Array | null = null;
  /** No data byte taken yet: a leading "." may end the message or be an escape. */
  #atDataStart = false;

  constructor(maxCommandLength: number, rejectBareLf: boolean) {
    this.#maxLine = maxCommandLength;
    this.#rejectBareLf = rejectBareLf;
  }

  /** Bytes received and not yet taken. */
  get pending(): number {
    return this.#buf.length - this.#pos;
  }

  push(bytes: Uint8Array) {
    if (bytes.length === 0) return;
    const left = this.#buf.length - this.#pos;
    if (left === 0) {
      this.#buf = bytes;
    } else {
      const joined = new Uint8Array(left + bytes.length);
      joined.set(this.#buf.subarray(this.#pos));
      joined.set(bytes, left);
      this.#buf = joined;
    }
    this.#pos = 0;
  }

  /** Takes whatever is pending (a last line that never got its line ending). */
  takeRest(): Uint8Array {
    const rest = this.#buf.subarray(this.#pos);
    this.discard();
    return rest;
  }

  /** Drops whatever is pending (STARTTLS, or the connection closing). */
  discard() {
    this.#buf = EMPTY;
    this.#pos = 0;
    this.#held = null;
  }

  /** The command that was just read was DATA: what follows is message data. */
  startData() {
    this.dataMode = true;
    this.dataBytes = 0;
    this.#atDataStart = true;
    this.#held = null;
  }

  next(): InputEvent {
    return this.dataMode ? this.#nextData() : this.#nextLine();
  }

  #nextLine(): InputEvent {
    const buf = this.#buf;
    const pos = this.#pos;
    const lf = indexOf.call(buf, LF, pos);
    if (lf < 0) {
      if (buf.length - pos > this.#maxLine) return this.#tooLong();
      return NEED_MORE;
    }
    const before = lf > pos ? buf[lf - 1]! : this.#prev;
    const end = before === CR && lf > pos ? lf - 1 : lf;
    if (before !== CR && this.#rejectBareLf) {
      // What came before the bare LF was never a whole line: too long, or refused as bare.
      if (lf - pos > this.#maxLine) return this.#tooLong();
      this.discard();
      return BARE_LF;
    }
    if (end - pos > this.#maxLine) return this.#tooLong();
    this.line = buf.subarray(pos, end);
    this.#pos = lf + 1;
    this.#prev = LF;
    return LINE;
  }

  #tooLong(): InputEvent {
    this.discard();
    return TOO_LONG;
  }

  /** SMTPStream._feedDataStream, one step at a time. */
  #nextData(): InputEvent {
    let chunk: Uint8Array;
    const left = this.#buf.length - this.#pos;
    if (left === 0) return NEED_MORE;
    const rest = this.#pos === 0 ? this.#buf : this.#buf.subarray(this.#pos);
    const held = this.#held;
    if (held !== null && held.length > 0) {
      chunk = new Uint8Array(held.length + left);
      chunk.set(held);
      chunk.set(rest, held.length);
    } else {
      chunk = rest;
    }
    this.#held = null;
    this.#buf = EMPTY;
    this.#pos = 0;
    let len = chunk.length;
    if (
      this.#atDataStart && len >= 3 && chunk[0] === DOT && chunk[1] === CR && chunk[2] === LF
    ) {
      return this.#endData(EMPTY, chunk.subarray(3));
    }
    if (this.#atDataStart && len >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
      chunk = chunk.subarray(1);
      len--;
      this.#atDataStart = false;
    }
    // A dot at the start of a line: the end of the message, or an escape to drop.
    for (
      let i = indexOf.call(chunk, DOT, 2);
      i >= 0 && i < len - 2;
      i = indexOf.call(chunk, DOT, i + 1)
    ) {
      if (chunk[i - 1] !== LF) continue;
      if (chunk[i - 2] === CR && chunk[i + 1] === CR && chunk[i + 2] === LF) {
        return this.#endData(chunk.subarray(0, i), chunk.subarray(i + 3));
      }
      if (chunk[i + 1] === DOT) {
        const out = chunk.subarray(0, i);
        this.#count(out.length);
        this.#buf = chunk.subarray(i + 1);
        this.chunk = out;
        return DATA;
      }
    }
    this.#held = len < 4 ? chunk : chunk.subarray(len - 4);
    if (this.#held.length < len) {
      const out = chunk.subarray(0, len - this.#held.length);
      this.#count(out.length);
      this.chunk = out;
      return DATA;
    }
    return NEED_MORE;
  }

  #count(n: number) {
    if (n > 0) this.#atDataStart = false;
    this.dataBytes += n;
  }

  #endData(last: Uint8Array, after: Uint8Array): InputEvent {
    this.#count(last.length);
    this.dataMode = false;
    this.#held = null;
    this.#buf = after;
    this.#pos = 0;
    this.#prev = LF;
    this.chunk = last;
    return DATA_END;
  }
}

const utf8 = new TextDecoder();

/** A command line as smtp-server hands it to its handlers (`Buffer#toString()`: UTF-8). */
export function lineText(line: Uint8Array): string {
  const n = line.length;
  if (n > 512) return utf8.decode(line);
  for (let i = 0; i < n; i++) {
    if (line[i]! >= 0x80) return utf8.decode(line);
  }
  return String.fromCharCode.apply(null, line as unknown as number[]);
}
