/**
 * "Did you mean": the known name nearest a misspelt one, so a typo in a setting stops start-up
 * with the fix in the same line instead of being silently ignored.
 */

/** Edit distance (insertions, deletions, substitutions, adjacent swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The nearest of `known` to `name`, if it is near enough to be a typo of it. */
export function nearest(name: string, known: Iterable<string>): string | null {
  // The shared prefix says nothing about which setting was meant.
  const bare = (s: string) => s.toUpperCase().replace(/^POSTERN_/, "");
  const wanted = bare(name);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(wanted, bare(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // A third of the name may differ: SMTP_PROT → SMTP_PORT, but FOO is no typo of KV.
  return best !== null && bestDistance <= Math.max(1, Math.floor(wanted.length / 3)) ? best : null;
}

/** ` (did you mean X?)`, or nothing when no known name is close. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const hit = nearest(name, known);
  return hit ? ` (did you mean ${hit}?)` : "";
}
