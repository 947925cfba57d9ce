/** RFC 2047 encoded-words (`=?utf-8?q?…?=`) in header values. */
// @ts-types="./_libmime.d.ts"
import libmime from "libmime";

/** RFC 2047 words decoded; a value that does not decode is read as written. */
export function decodedWords(value: string): string {
  // Without "=?" no encoded-word can start, and without NUL neither can libmime's join marker:
  // the value reads as it is (nearly every From field), and its regular expressions need not run.
  if (!value.includes("=?") && !value.includes("\0")) return value;
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}
