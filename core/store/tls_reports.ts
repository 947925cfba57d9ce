/**
 * TLS reporting counters (RFC 8460): per UTC day and recipient domain, the policy each session
 * was held to and how many sessions succeeded or failed with which result type.
 */
import { keys } from "./keys.ts";
import { Committer } from "./committer.ts";

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

/**
 * The policies this process has set, by store and by day, domain and type (as JSON): a session
 * held to the policy already set that day only adds to its counter. Setting the policy again for
 * every session cost a page of the expiry index and a page of the counters per outbound
 * connection, in a commit of its own.
 */
const policiesSet = new WeakMap<Deno.Kv, { day: string; set: Map<string, string> }>();

/**
 * Counts one session. Through the group committer when given one: the counter is a sum, so it
 * folds into the batch that is being written anyway instead of costing a commit (an fsync) per
 * outbound connection.
 */
export async function recordTlsResult(
  store: Deno.Kv | Committer,
  r: TlsSessionResult,
): Promise<void> {
  const kv = store instanceof Committer ? store.kv : store;
  let known = policiesSet.get(kv);
  if (known?.day !== r.day) policiesSet.set(kv, known = { day: r.day, set: new Map() });
  const id = `${r.domain}\u0000${r.policy.type}`;
  const policy = JSON.stringify(r.policy);
  const setPolicy = known.set.get(id) !== policy;
  const apply = (op: Deno.AtomicOperation) => {
    if (setPolicy) {
      op.set(keys.tlsReportPolicy(r.day, r.domain, r.policy.type), r.policy, {
        expireIn: 40 * 86_400_000,
      });
    }
    op.sum(keys.tlsReportCount(r.day, r.domain, r.policy.type, r.result, r.mx), 1n);
  };
  if (store instanceof Committer) {
    await store.commit({ apply });
  } else {
    const op = kv.atomic();
    apply(op);
    await op.commit();
  }
  known.set.set(id, policy);
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
