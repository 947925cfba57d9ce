/** Reading SMTP replies out of a text buffer, shared by the raw test clients. */

export interface ParsedReply {
  code: number;
  /** The text of each line after `250-` / `250 `. */
  lines: string[];
  /** The reply as sent, lines joined with "\n". */
  raw: string;
}

/**
 * Takes one complete (possibly multi-line) reply from the front of `buffer`; null while the
 * reply's last line has not arrived yet.
 */
export function takeReply(buffer: string): { reply: ParsedReply; rest: string } | null {
  const lines: string[] = [];
  let offset = 0;
  for (;;) {
    const end = buffer.indexOf("\r\n", offset);
    if (end === -1) return null;
    const line = buffer.slice(offset, end);
    offset = end + 2;
    lines.push(line);
    if (!/^\d{3}-/.test(line)) break;
  }
  return {
    reply: {
      code: Number(lines[lines.length - 1]!.slice(0, 3)),
      lines: lines.map((line) => line.slice(4)),
      raw: lines.join("\n"),
    },
    rest: buffer.slice(offset),
  };
}
