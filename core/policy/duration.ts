/**
 * Durations and rates written the way operators write them in config: "30s", "1h30m", "100/min".
 * Parsed once at load time into milliseconds, so policy code only ever does arithmetic.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// Longest unit first, so "ms" is not read as "m" followed by a stray "s".
const NUMBER = String.raw`(?:\d+(?:\.\d+)?|\.\d+)`;
const UNIT = "(?:ms|s|m|h|d)";
const WHOLE_DURATION = new RegExp(`^(?:${NUMBER}${UNIT})+$`);
const DURATION_PART = new RegExp(`(${NUMBER})(${UNIT})`, "g");
const BARE_NUMBER = new RegExp(`^${NUMBER}$`);

/**
 * Parses a duration such as "250ms", "30s", "5m", "1.5h", "5d" or "1h30m" into milliseconds.
 * A bare number is seconds, as in Postfix's time parameters.
 *
 * @throws {Error} when the text is not a non-negative duration.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (BARE_NUMBER.test(trimmed)) return Math.round(Number(trimmed) * UNIT_MS.s!);
  if (!WHOLE_DURATION.test(trimmed)) {
    throw new Error(
      `Cannot parse duration "${text}": expected a number followed by ms, s, m, h or d`,
    );
  }
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(DURATION_PART)) {
    total += Number(amount) * UNIT_MS[unit!]!;
  }
  return Math.round(total);
}

const FORMAT_UNITS: ReadonlyArray<readonly [string, number]> = [
  ["d", UNIT_MS.d!],
  ["h", UNIT_MS.h!],
  ["m", UNIT_MS.m!],
  ["s", UNIT_MS.s!],
  ["ms", UNIT_MS.ms!],
];

/**
 * Formats milliseconds compactly, largest unit first: 90 000 → "1m30s", 5 400 000 → "1h30m".
 * The output parses back with {@linkcode parseDuration} to the same (rounded) value.
 *
 * @throws {Error} when `ms` is negative or not finite.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new Error(
      `Cannot format duration as it must be a non-negative finite number of milliseconds: current value is ${ms}`,
    );
  }
  let rest = Math.round(ms);
  if (rest === 0) return "0s";
  let out = "";
  for (const [unit, size] of FORMAT_UNITS) {
    const whole = Math.floor(rest / size);
    if (whole > 0) {
      out += `${whole}${unit}`;
      rest -= whole * size;
    }
  }
  return out;
}

/** A rate limit: at most `count` events per `perMs` milliseconds. */
export interface Rate {
  count: number;
  perMs: number;
}

const PERIOD_WORD_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: UNIT_MS.s!,
  sec: UNIT_MS.s!,
  second: UNIT_MS.s!,
  m: UNIT_MS.m!,
  min: UNIT_MS.m!,
  minute: UNIT_MS.m!,
  h: UNIT_MS.h!,
  hr: UNIT_MS.h!,
  hour: UNIT_MS.h!,
  d: UNIT_MS.d!,
  day: UNIT_MS.d!,
};

/**
 * Parses a rate written as count per period, as KumoMTA's shaping files do: "100/min", "10/s",
 * "5000/h", "20000/day", or with a duration as the period, "3/5m".
 *
 * @throws {Error} when the count is not a positive integer or the period is not a positive duration.
 */
export function parseRate(text: string): Rate {
  const fail = (why: string): never => {
    throw new Error(
      `Cannot parse rate "${text}": ${why}; expected a count per period such as "100/min", "10/s" or "3/5m"`,
    );
  };
  const parts = text.trim().split("/");
  if (parts.length !== 2) return fail("missing '/' between count and period");
  const countText = parts[0]!.trim();
  const periodText = parts[1]!.trim().toLowerCase();

  if (!/^\d+$/.test(countText) || Number(countText) === 0) {
    return fail(`count "${countText}" is not a positive integer`);
  }
  // A bare number as the period ("3/5") is ambiguous, so unlike parseDuration we insist on a unit.
  let perMs = PERIOD_WORD_MS[periodText] ?? PERIOD_WORD_MS[periodText.replace(/s$/, "")];
  if (perMs === undefined && /[a-z]$/.test(periodText)) {
    try {
      perMs = parseDuration(periodText);
    } catch {
      perMs = undefined;
    }
  }
  if (perMs === undefined) return fail(`period "${periodText}" is not a duration`);
  if (perMs <= 0) return fail(`period "${periodText}" is not positive`);
  return { count: Number(countText), perMs };
}
