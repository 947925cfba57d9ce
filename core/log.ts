/**
 * JSON-lines logging to stdout. One line per SMTP transaction and per delivery attempt, so a
 * message id greps out the whole story. Fields that look secret are never written.
 *
 * Lines to stdout are gathered and written together: one write per turn of the event loop
 * instead of one synchronous write per line (at saturation those writes were 3.6 % of the main
 * thread). A line never waits past the turn that logged it, so it still leaves right behind the
 * SMTP reply or the commit it describes; a warning or error is written at once together with
 * everything before it, so the last words before a crash are never held back; `unload` (which
 * Deno.exit and a normal end dispatch) and an uncaught error write what is left.
 */

import { memoizedNameTest } from "./name_memo.ts";

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /pass|secret|token|authorization|^key$|hash/i;

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** Longest a buffered line waits for its write: 0 = the end of the current turn. */
const FLUSH_MS = 0;
/** Bytes gathered before a write regardless of the timer. */
const FLUSH_BYTES = 64 * 1024;

const encoder = new TextEncoder();

/** Lines for one output, written together (see the module comment). */
export class LineBuffer {
  #lines: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #out: (bytes: Uint8Array) => void;
  readonly #buffer = new Uint8Array(2 * FLUSH_BYTES);
  readonly #flushMs: number;

  constructor(out: (bytes: Uint8Array) => void, flushMs = FLUSH_MS) {
    this.#out = out;
    this.#flushMs = flushMs;
  }

  push(line: string, urgent = false) {
    this.#lines.push(line);
    this.#bytes += line.length + 1;
    if (urgent || this.#bytes >= FLUSH_BYTES) return this.flush();
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#flushMs);
    }
  }

  /** Writes every buffered line now. */
  flush() {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("\n") + "\n";
    this.#lines = [];
    this.#bytes = 0;
    // Encoded into one buffer kept for the purpose: a fresh one for every write cost more than
    // the encoding. `out` writes it before it returns.
    const { read, written } = encoder.encodeInto(text, this.#buffer);
    this.#out(read === text.length ? this.#buffer.subarray(0, written) : encoder.encode(text));
  }
}

function writeAllSync(bytes: Uint8Array) {
  let at = 0;
  while (at < bytes.length) at += Deno.stdout.writeSync(bytes.subarray(at));
}

const stdoutLines = new LineBuffer(writeAllSync);
globalThis.addEventListener("unload", () => stdoutLines.flush());
// Runs before Deno reports the uncaught error and exits; the crash itself goes on as before.
globalThis.addEventListener("error", () => stdoutLines.flush());
globalThis.addEventListener("unhandledrejection", () => stdoutLines.flush());

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (isSecret(k)) out[k] = "[redacted]";
    else if (v instanceof Error) out[k] = v.message;
    else out[k] = v;
  }
  return out;
}

/** Whether a field name looks secret, remembered per name. */
const isSecret = memoizedNameTest(SECRET_FIELD);

/**
 * Whether `fields` go into the line as they are: nothing to redact or to turn into its message,
 * and no name the line's own fields have or that a record would order first (an index).
 */
function writtenAsIs(fields: Record<string, unknown>): boolean {
  for (const k in fields) {
    const first = k.charCodeAt(0);
    if (
      (first >= 48 && first <= 57) || k === "ts" || k === "level" || k === "event" ||
      isSecret(k) || fields[k] instanceof Error
    ) return false;
  }
  return true;
}

/** The time stamp of the millisecond last logged in, made once for every line within it. */
let stampMs = NaN;
let stampText = "";

function timestamp(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stampText = new Date(now).toISOString();
  }
  return stampText;
}

/**
 * One JSON line: `ts`, `level`, `event`, then the fields, redacted. The usual line (every field
 * written as it is) is joined from the fields' own JSON instead of building a record for it: two
 * lines per message made that copy a third of what logging cost.
 */
function formatLine(level: Level, event: string, fields?: Record<string, unknown>): string {
  const ts = timestamp();
  if (fields && !writtenAsIs(fields)) {
    return JSON.stringify({ ts, level, event, ...redact(fields) });
  }
  const head = `{"ts":"${ts}","level":"${level}","event":${JSON.stringify(event)}`;
  const rest = fields ? JSON.stringify(fields) : "{}";
  return rest.length > 2 ? `${head},${rest.slice(1)}` : `${head}}`;
}

export function createLogger(
  options: { level?: Level; write?: (line: string, urgent: boolean) => void } = {},
): Logger {
  const min = ORDER[options.level ?? "info"];
  const write = options.write ??
    ((line: string, urgent: boolean) => stdoutLines.push(line, urgent));
  function log(level: Level, event: string, fields?: Record<string, unknown>) {
    if (ORDER[level] < min) return;
    write(formatLine(level, event, fields), ORDER[level] >= ORDER.warn);
  }
  return {
    debug: (e, f) => log("debug", e, f),
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}

export const silentLogger: Logger = createLogger({ write: () => {} });
