/**
 * Subject search: a stored subject is the header value as it arrived (a binary string, perhaps
 * with RFC 2047 encoded-words), so a search term is looked for both there and in what a reader's
 * mail client shows — 8-bit bytes read as UTF-8, encoded-words decoded — ignoring case.
 */
import { utf8 } from "./headers.ts";
import { decodedWords } from "./encoded_words.ts";

/** The subject as a reader sees it. */
export function readableSubject(stored: string): string {
  return decodedWords(/[^\x00-\x7f]/.test(stored) ? utf8(stored) : stored);
}

/** Whether `stored` contains `term`, case-insensitively, as written or as read. */
export function subjectContains(stored: string, term: string): boolean {
  const needle = term.toLowerCase();
  return stored.toLowerCase().includes(needle) ||
    readableSubject(stored).toLowerCase().includes(needle);
}
