/**
 * Reads how long a server asked us to wait from the free text of its reply.
 *
 * Greylisting servers (postgrey, milter-greylist, rspamd, Exim greylistd) and some throttling
 * servers say how long to stay away, each in its own words. Retrying before then only earns
 * another 4xx and resets some greylisters' timers, so the queue uses this as `notBefore`.
 *
 * @module
 */

const UNIT_MS: ReadonlyArray<readonly [RegExp, number]> = [
  [/^(?:ms|msecs?|milliseconds?)$/, 1],
  [/^(?:s|secs?|seconds?)$/, 1_000],
  [/^(?:m|mins?|minutes?)$/, 60_000],
  [/^(?:h|hrs?|hours?)$/, 3_600_000],
  [/^(?:d|days?)$/, 86_400_000],
];

// A wait is a number right after a word that introduces one ("in", "for", "after", "wait") or
// an opening parenthesis ("try again later (300s)"). Instead of taking any number with a unit,
// we insist on that lead-in, to avoid reading "4.7.1", "[203.0.113.7]" or "(S77714)" as waits.
const LEAD_IN = String
  .raw`(?:\b(?:in|for|after|wait(?:ing)?|within|delay(?:ed)?(?:\s+of)?)\s+|\(\s*)`;
const AMOUNT_UNIT = String.raw`(\d+(?:\.\d+)?)\s*([a-z]+)`;
const WITH_UNITS = new RegExp(`${LEAD_IN}${AMOUNT_UNIT}`, "gi");
const NEXT_PART = new RegExp(String.raw`\s*(?:and\s+)?${AMOUNT_UNIT}`, "iy");
// milter-greylist writes "please come back in 00:05:00" (hh:mm:ss); two fields are mm:ss.
const CLOCK = new RegExp(String.raw`${LEAD_IN}(\d{1,2}):(\d{2})(?::(\d{2}))?\b`, "i");

/**
 * The wait, in milliseconds, stated in a reply's text: "try again in 5 minutes", "retry in 300
 * seconds", "Please try again later (300s)", "greylisted for 60 seconds", "wait 2 min",
 * "come back in 00:05:00", "retry in 4m59s". Returns `undefined` when the text names no wait;
 * a bare number without a unit ("retry in 300") is not taken as one.
 */
export function greylistWindowMs(text: string): number | undefined {
  const clock = CLOCK.exec(text);
  for (const match of text.matchAll(WITH_UNITS)) {
    if (clock !== null && clock.index < match.index) break;
    const first = unitMs(match[2]!);
    if (first === undefined) continue;
    let total = Number(match[1]) * first;
    // Compound waits: "4m59s", "1 hour and 30 minutes".
    NEXT_PART.lastIndex = match.index + match[0].length;
    for (let part = NEXT_PART.exec(text); part !== null; part = NEXT_PART.exec(text)) {
      const size = unitMs(part[2]!);
      if (size === undefined) break;
      total += Number(part[1]) * size;
    }
    return Math.round(total);
  }
  if (clock === null) return undefined;
  const [a, b, c] = [Number(clock[1]), Number(clock[2]), clock[3]];
  const seconds = c === undefined ? a * 60 + b : a * 3600 + b * 60 + Number(c);
  return seconds * 1_000;
}

function unitMs(word: string): number | undefined {
  const lower = word.toLowerCase();
  return UNIT_MS.find(([pattern]) => pattern.test(lower))?.[1];
}
