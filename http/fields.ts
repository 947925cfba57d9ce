/** zod fields shared by request bodies: DNS names, networks, rates. */
import { z } from "zod";
import { parseCidr } from "../core/net/cidr.ts";
import { parseRate } from "../core/policy/duration.ts";

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function isDomainName(name: string): boolean {
  const labels = name.split(".");
  return labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!);
}

/** A DNS name in A-label form, lower-cased, without a trailing dot (RFC 1035 §2.3.4 limits). */
export const domainName = z.string().trim().toLowerCase()
  .max(253, "a domain name has at most 253 characters")
  .transform((s) => s.replace(/\.$/, ""))
  .refine(
    isDomainName,
    "expected a domain name such as example.com: labels of letters, digits and hyphens, " +
      "at most 63 characters each (an IDN as xn-- A-labels)",
  );

/** A person-facing name: letters, digits, space and . _ @ -. */
export const label = z.string().trim().min(1).max(100).regex(
  /^[\w .@-]+$/,
  "letters, digits, space, . _ @ -",
);

export const cidr = z.string().trim().max(64).refine((s) => {
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}, "expected an IP address or a CIDR such as 10.0.0.0/8");

export const rate = z.string().trim().max(32).refine((s) => {
  try {
    parseRate(s);
    return true;
  } catch {
    return false;
  }
}, 'expected a count per period such as "100/min", "10/s" or "5000/day"');

/** The name of an IP pool (config `pools`). */
export const poolName = z.string().trim().min(1).max(64).regex(
  /^[A-Za-z0-9_.-]+$/,
  "letters, digits, . _ -",
);

/** Pools granted to a credential or an account, for `X-Postern-Pool`. */
export const poolList = z.array(poolName).max(100);
