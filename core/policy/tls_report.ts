/**
 * TLS reporting (RFC 8460) as pure functions: the `_smtp._tls` TXT record, and the aggregate
 * report JSON for one domain and UTC day.
 *
 * @module
 */
import type { TlsDayReport } from "../store/tls_reports.ts";

/** YYYY-MM-DD of a UTC instant. */
export function utcDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The `rua` URIs of a `v=TLSRPTv1; rua=…` record (mailto: and https: only); [] when none. */
export function parseTlsRptRecord(texts: readonly string[]): string[] {
  const valid = texts.map((t) => t.trim()).filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  if (valid.length !== 1) return [];
  for (const field of valid[0]!.split(";")) {
    const m = /^\s*rua\s*=\s*(.+?)\s*$/.exec(field);
    if (!m) continue;
    return m[1]!.split(",").map((u) => u.trim()).filter((u) =>
      /^mailto:[^@\s]+@[^@\s]+$/i.test(u) || /^https:\/\/\S+$/i.test(u)
    );
  }
  return [];
}

export interface TlsReportMeta {
  /** The submitter: Postern's host name. */
  organization: string;
  contact: string;
}

/** The RFC 8460 §4 JSON report for one domain and day. */
export function buildTlsReport(day: TlsDayReport, meta: TlsReportMeta): Record<string, unknown> {
  return {
    "organization-name": meta.organization,
    "date-range": {
      "start-datetime": `${day.day}T00:00:00Z`,
      "end-datetime": `${day.day}T23:59:59Z`,
    },
    "contact-info": meta.contact,
    "report-id": `${day.day}_${day.domain}@${meta.organization}`,
    policies: day.policies.map((p) => ({
      policy: {
        "policy-type": p.policy.type,
        ...(p.policy.strings.length ? { "policy-string": p.policy.strings } : {}),
        "policy-domain": day.domain,
        ...(p.policy.mxHosts.length ? { "mx-host": p.policy.mxHosts } : {}),
      },
      summary: {
        "total-successful-session-count": p.success,
        "total-failure-session-count": p.failures.reduce((n, f) => n + f.count, 0),
      },
      ...(p.failures.length
        ? {
          "failure-details": p.failures.map((f) => ({
            "result-type": f.result,
            "receiving-mx-hostname": f.mx,
            "failed-session-count": f.count,
          })),
        }
        : {}),
    })),
  };
}
