/**
 * IP pools: named sets of source addresses, each with the EHLO name that matches its PTR, a
 * weight for the weighted choice, and an optional warm-up plan that caps a new address's daily
 * volume per site. Config `pools: {name: {sources: [{address, ehlo, weight, warmup}]}}`.
 *
 * @module
 */
import { z } from "zod";
import { isIP } from "node:net";

const Warmup = z.object({
  /** The first day of the plan (UTC), "YYYY-MM-DD". */
  start: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD").refine(
    (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)),
    "not a date",
  ),
  /** Messages per site on day 1, 2, …; after the last day the address is warm (no cap). */
  daily: z.array(z.number().int().nonnegative()).min(1),
}).strict();

const Source = z.object({
  address: z.string().refine((a) => isIP(a) !== 0, "expected an IPv4 or IPv6 address"),
  ehlo: z.string().min(1).regex(/^[A-Za-z0-9.-]+$/, "expected a host name"),
  weight: z.number().positive().default(1),
  warmup: Warmup.optional(),
}).strict();

const Pool = z.object({ sources: z.array(Source).min(1) }).strict();

export const PoolsSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, . _ -"),
  Pool,
);

export type Pools = z.output<typeof PoolsSchema>;
export type PoolSource = z.output<typeof Source>;
export type WarmupPlan = z.output<typeof Warmup>;

/** The pool used when neither the message header nor the credential names one. */
export const DEFAULT_POOL = "default";
