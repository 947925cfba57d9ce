/** The creation time encoded in a time-ordered id (core/ids.ts). */
export function idTime(id: string): number {
  const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(ch);
  return t;
}
