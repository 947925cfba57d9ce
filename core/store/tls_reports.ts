/**
 * TLS reporting counters (RFC 8460): per UTC day and recipient domain, the policy each session
 * was held to and how many sessions succeeded or failed with which result type.
 */
import { keys } from "./keys.ts";

/** RFC 8460 §4.3 policy types. */
export type TlsPolicyType = "sts" | "tlsa" | "no-policy-found";

export interface TlsReportPolicy {
  type: TlsPolicyType;
  /** `policy-string`: the policy's lines (MTA-STS) or TLSA records. */
  strings: string[];
  /** `mx-host` patterns for MTA-STS. */
  mxHosts: string[];
}

/** One session's outcome: "success" or an RFC 8460 result type. */
export interface TlsSessionResult {
  day: string;
  domain: string;
  policy: TlsReportPolicy;
  result: string;
  /** The MX host the session went to (receiving-mx-hostname). */
  mx: string;
}

export async function recordTlsResult(kv: Deno.Kv, r: TlsSessionResult): Promise<void> {
  await kv.atomic()
    .set(keys.tlsReportPolicy(r.day, r.domain, r.policy.type), r.policy, {
      expireIn: 40 * 86_400_000,
    })
    .sum(keys.tlsReportCount(r.day, r.domain, r.policy.type, r.result, r.mx), 1n)
    .commit();
}

export interface TlsDayReport {
  day: string;
  domain: string;
  policies: {
    policy: TlsReportPolicy;
    success: number;
    failures: { result: string; mx: string; count: number }[];
  }[];
}

/** Every domain's counters for `day` (or only `domain`'s). */
export async function readTlsReports(
  kv: Deno.Kv,
  day: string,
  domain?: string,
): Promise<TlsDayReport[]> {
  const byDomain = new Map<string, TlsDayReport>();
  const entry = (d: string, type: string) => {
    const report = byDomain.get(d) ?? { day, domain: d, policies: [] };
    byDomain.set(d, report);
    let p = report.policies.find((x) => x.policy.type === type);
    if (!p) {
      p = {
        policy: { type: type as TlsPolicyType, strings: [], mxHosts: [] },
        success: 0,
        failures: [],
      };
      report.policies.push(p);
    }
    return p;
  };
  for await (const e of kv.list<TlsReportPolicy>({ prefix: keys.tlsReportPolicyPrefix(day) })) {
    const [, , d, type] = e.key as string[];
    if (domain && d !== domain) continue;
    entry(d!, type!).policy = e.value;
  }
  for await (
    const e of kv.list<Deno.KvU64>({ prefix: keys.tlsReportCountPrefix(day, domain) })
  ) {
    const [, , d, type, result, mx] = e.key as string[];
    const p = entry(d!, type!);
    const count = Number(e.value.value);
    if (result === "success") p.success += count;
    else p.failures.push({ result: result!, mx: mx!, count });
  }
  return [...byDomain.values()];
}

/** Marks the day's report for `domain` sent; false when it already was (another node). */
export async function markTlsReportSent(
  kv: Deno.Kv,
  day: string,
  domain: string,
  at: number,
): Promise<boolean> {
  const key = keys.tlsReportSent(day, domain);
  const res = await kv.atomic().check({ key, versionstamp: null }).set(key, { at }, {
    expireIn: 40 * 86_400_000,
  }).commit();
  return res.ok;
}

/** The days (YYYY-MM-DD) with counters, oldest first. */
export async function tlsReportDays(kv: Deno.Kv): Promise<string[]> {
  const days = new Set<string>();
  for await (const e of kv.list({ prefix: keys.tlsReportPolicyPrefix() })) {
    days.add(String(e.key[1]));
  }
  return [...days].sort();
}
