/**
 * JSON-lines logging to stdout. One line per SMTP transaction and per delivery attempt, so a
 * message id greps out the whole story. Fields that look secret are never written.
 */

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /pass|secret|token|authorization|^key$|hash/i;

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

const encoder = new TextEncoder();

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k)) out[k] = "[redacted]";
    else if (v instanceof Error) out[k] = v.message;
    else out[k] = v;
  }
  return out;
}

export function createLogger(
  options: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const min = ORDER[options.level ?? "info"];
  const write = options.write ?? ((line: string) => {
    Deno.stdout.writeSync(encoder.encode(line + "\n"));
  });
  function log(level: Level, event: string, fields?: Record<string, unknown>) {
    if (ORDER[level] < min) return;
    const record = {
      ts: new Date().toISOString(),
      level,
      event,
      ...(fields ? redact(fields) : {}),
    };
    write(JSON.stringify(record));
  }
  return {
    debug: (e, f) => log("debug", e, f),
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}

export const silentLogger: Logger = createLogger({ write: () => {} });
