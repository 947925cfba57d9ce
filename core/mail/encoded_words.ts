/** RFC 2047 encoded-words (`=?utf-8?q?…?=`) in header values. */
// @ts-types="./_libmime.d.ts"
import libmime from "libmime";

/** RFC 2047 words decoded; a value that does not decode is read as written. */
export function decodedWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}
