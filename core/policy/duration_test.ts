import assert from "node:assert/strict";
import { formatDuration, parseDuration, parseRate, type Rate } from "./duration.ts";

Deno.test("parseDuration() reads every unit, fractions and compound durations", () => {
  const cases: Array<[string, number]> = [
    ["250ms", 250],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["4h", 14_400_000],
    ["5d", 432_000_000],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["1h30m", 5_400_000],
    ["1d2h3m4s5ms", 93_784_005],
    ["0s", 0],
    [" 10m ", 600_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration() reads a bare number as seconds", () => {
  const cases: Array<[string, number]> = [["30", 30_000], ["0", 0], ["1.5", 1_500]];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration() rejects text that is not a duration", () => {
  const cases = ["", "x", "5 m", "-5m", "5w", "5M", "m5", "1h 30m", "5.m", "1e3s", "5mm"];
  for (const text of cases) {
    assert.throws(
      () => parseDuration(text),
      {
        message: `Cannot parse duration "${text}": expected a number followed by ms, s, m, h or d`,
      },
      text,
    );
  }
});

Deno.test("formatDuration() writes the largest units first and drops empty ones", () => {
  const cases: Array<[number, string]> = [
    [0, "0s"],
    [250, "250ms"],
    [10_000, "10s"],
    [90_000, "1m30s"],
    [300_000, "5m"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [93_784_005, "1d2h3m4s5ms"],
    [1_000.4, "1s"],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
});

Deno.test("formatDuration() output parses back to the same milliseconds", () => {
  for (const ms of [0, 1, 999, 1_000, 59_999, 61_000, 3_599_999, 86_400_000, 123_456_789]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
  }
});

Deno.test("formatDuration() rejects negative and non-finite values", () => {
  for (const ms of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => formatDuration(ms), /Cannot format duration/, String(ms));
  }
});

Deno.test("parseRate() reads a count per period word or per duration", () => {
  const cases: Array<[string, Rate]> = [
    ["100/min", { count: 100, perMs: 60_000 }],
    ["10/s", { count: 10, perMs: 1_000 }],
    ["10/sec", { count: 10, perMs: 1_000 }],
    ["5000/h", { count: 5_000, perMs: 3_600_000 }],
    ["5000/hour", { count: 5_000, perMs: 3_600_000 }],
    ["20000/day", { count: 20_000, perMs: 86_400_000 }],
    ["20000/days", { count: 20_000, perMs: 86_400_000 }],
    ["3/5m", { count: 3, perMs: 300_000 }],
    ["1/1.5s", { count: 1, perMs: 1_500 }],
    [" 7 / m ", { count: 7, perMs: 60_000 }],
  ];
  for (const [text, rate] of cases) assert.deepEqual(parseRate(text), rate, text);
});

Deno.test("parseRate() names what is wrong with a bad rate", () => {
  const cases: Array<[string, RegExp]> = [
    ["100", /missing '\/'/],
    ["1/2/3", /missing '\/'/],
    ["0/min", /count "0" is not a positive integer/],
    ["1.5/min", /count "1.5" is not a positive integer/],
    ["-1/min", /count "-1" is not a positive integer/],
    ["/min", /count "" is not a positive integer/],
    ["3/5", /period "5" is not a duration/],
    ["3/fortnight", /period "fortnight" is not a duration/],
    ["3/0s", /period "0s" is not positive/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseRate(text), message, text);
    assert.throws(() => parseRate(text), /expected a count per period such as "100\/min"/, text);
  }
});
