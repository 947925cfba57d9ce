/**
 * The X-Spam-* result headers added to mail that passes when an account asks for them
 * (`add_headers`). They go in front of the message with the DKIM-Signature fields, outside the
 * signed set (core/mail/dkim.ts SIGNED_FIELDS names no X- field), so they never break a signature.
 * rspamd's own milter headers come first when it sent any (X-Spam*, X-Rspamd*); the summary rspamd's
 * milter_headers module would write (X-Spamd-Result, X-Spam-Status, X-Spam-Action) fills the rest,
 * since rspamd leaves those out for authenticated senders.
 *
 * @module
 */
import type { RspamdResult } from "./rspamd.ts";

const MAX_LINE = 78;

/** One header field, folded at spaces so no line passes 78 characters where it can help it. */
function field(name: string, value: string): string {
  const clean = value.replace(/[\r\n\t]+/g, " ").replace(/[^\x20-\x7e]/g, "?").trim();
  const words = clean.split(" ");
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > MAX_LINE && line.length > name.length + 1) {
      lines.push(line);
      line = ` ${w}`;
    } else line += ` ${w}`;
  }
  lines.push(line);
  return lines.join("\r\n") + "\r\n";
}

const fixed = (n: number) => n.toFixed(2);

export function spamHeaders(result: RspamdResult): string {
  const given = result.addHeaders.filter(([name]) => /^X-(Spam|Rspamd)[A-Za-z0-9-]*$/i.test(name));
  const names = new Set(given.map(([n]) => n.toLowerCase()));
  const out = given.map(([n, v]) => field(n, v));
  const spam = result.action === "reject" || result.action === "add header" ||
    result.action === "rewrite subject";
  if (!names.has("x-spamd-result")) {
    const symbols = result.symbols.map((s) => `${s.name}(${fixed(s.score)})`).join("; ");
    const head = `default: ${spam ? "True" : "False"} [${fixed(result.score)} / ${
      fixed(result.requiredScore)
    }]`;
    out.push(field("X-Spamd-Result", symbols ? `${head}; ${symbols}` : head));
  }
  if (!names.has("x-spam-status")) {
    out.push(
      field(
        "X-Spam-Status",
        `${spam ? "Yes" : "No"}, score=${fixed(result.score)} required=${
          fixed(result.requiredScore)
        }`,
      ),
    );
  }
  if (!names.has("x-spam-action")) out.push(field("X-Spam-Action", result.action));
  return out.join("");
}
