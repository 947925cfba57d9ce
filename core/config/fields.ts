/**
 * Zod field types shared by the config schemas: durations ("30s") and rates ("100/min") written
 * as operators write them, parsed once at load time into numbers.
 */
import { z } from "zod";
import { parseDuration, parseRate, type Rate } from "../policy/duration.ts";
import { parseRetrySchedule } from "../policy/retry_schedule.ts";

/** A duration as text ("5m") or as milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return typeof v === "number" ? v : parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** A rate as text: "100/min", "10/s", "3/5m". */
export const rate = z.string().transform((v, ctx): Rate => {
  try {
    return parseRate(v);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** A retry schedule: "1m,5m,1h" or a list of such items. */
export const retrySchedule = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  try {
    return parseRetrySchedule(typeof v === "string" ? v : v.join(","));
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** A name server: `ip` or `ip:port` (`[v6]:port`), port 53 by default. */
export const dnsServer = z.string().transform((v, ctx) => {
  const m = /^\[?([0-9A-Fa-f:.]+?)\]?(?::(\d+))?$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: "custom", message: `expected ip or ip:port, got "${v}"` });
    return z.NEVER;
  }
  return { ipAddr: m[1]!, port: m[2] ? Number(m[2]) : 53 };
});
