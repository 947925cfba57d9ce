import assert from "node:assert/strict";
import { greylistWindowMs } from "./greylist.ts";

Deno.test("greylistWindowMs() reads the wait a server asks for, in its own words", () => {
  const cases: Array<[string, number]> = [
    ["try again in 5 minutes", 300_000],
    ["Greylisted, please try again in 5 minutes", 300_000],
    ["retry in 300 seconds", 300_000],
    ["Please try again later (300s)", 300_000],
    ["Please try again later ( 300 sec )", 300_000],
    ["greylisted for 60 seconds", 60_000],
    ["Greylisted for 5 minutes (2)", 300_000],
    ["wait 2 min", 120_000],
    ["waiting 90s before accepting mail from new senders", 90_000],
    ["Try again after 1 hour", 3_600_000],
    ["blocked for 2 hrs", 7_200_000],
    ["delayed for 1 day", 86_400_000],
    ["retry in 4m59s", 299_000],
    ["retry in 1 hour and 30 minutes", 5_400_000],
    ["TRY AGAIN IN 2 MINUTES", 120_000],
    ["try again in 1.5 minutes", 90_000],
    ["try again in 250ms", 250],
    ["Greylisting in action, please come back in 00:05:00", 300_000],
    ["please come back in 01:02:03", 3_723_000],
    ["please come back in 05:30", 330_000],
    [
      "<bob@example.org>: Recipient address rejected: Greylisted for 300 seconds (see http://isg.ee.ethz.ch/tools/postgrey/help/example.org.html)",
      300_000,
    ],
  ];
  for (const [text, ms] of cases) assert.equal(greylistWindowMs(text), ms, text);
});

Deno.test("greylistWindowMs() returns undefined when the text names no wait", () => {
  const cases = [
    "",
    "Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
    "Try again later",
    "Greylisting in action, please come back later",
    "retry in 300",
    "Server busy. Please try again later from [203.0.113.7]. (S77714)",
    "[TSS04] Messages from 203.0.113.7 temporarily deferred - 4.16.55.1",
    "Message temporarily deferred - [160]",
    "delivered in 5 messages",
    "4.7.1 Service unavailable",
  ];
  for (const text of cases) assert.equal(greylistWindowMs(text), undefined, text);
});
