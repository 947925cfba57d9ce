/**
 * A test of names remembered per name: a relay meets the same few field and property names again
 * and again (log fields, record fields), and a regular expression per use was measurable on the
 * main thread. Bounded: past `max` names the memory starts over.
 */
export function memoizedNameTest(pattern: RegExp, max = 10_000): (name: string) => boolean {
  const seen = new Map<string, boolean>();
  return (name) => {
    let result = seen.get(name);
    if (result === undefined) {
      result = pattern.test(name);
      if (seen.size >= max) seen.clear();
      seen.set(name, result);
    }
    return result;
  };
}
