/**
 * MTA-STS (RFC 8461) as pure functions: the `_mta-sts` TXT record, the policy file, and whether
 * an MX host is one the policy names.
 *
 * @module
 */

export type StsMode = "enforce" | "testing" | "none";

export interface StsPolicy {
  mode: StsMode;
  /** MX patterns: a host name, or `*.example.com` for one leftmost label (RFC 8461 §4.1). */
  mx: string[];
  /** Seconds the policy may be cached (RFC 8461 §3.2: at most 31557600). */
  maxAge: number;
}

/** The id of a `v=STSv1; id=…` TXT record; null when the texts hold no valid one. */
export function parseStsRecord(texts: readonly string[]): string | null {
  // RFC 8461 §3.1: records not starting with v=STSv1 are ignored; more than one valid is none.
  const valid = texts.map((t) => t.trim()).filter((t) => /^v=STSv1\s*(;|$)/.test(t));
  if (valid.length !== 1) return null;
  for (const field of valid[0]!.split(";")) {
    const m = /^\s*id\s*=\s*([A-Za-z0-9]{1,32})\s*$/.exec(field);
    if (m) return m[1]!;
  }
  return null;
}

const MAX_AGE_LIMIT = 31_557_600;

/** Parses a policy file (RFC 8461 §3.2); an error names what is wrong. */
export function parseStsPolicy(text: string): { ok: true; policy: StsPolicy } | {
  ok: false;
  reason: string;
} {
  const fields = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) return { ok: false, reason: `malformed policy line "${line.slice(0, 80)}"` };
    const key = line.slice(0, colon).trim().toLowerCase();
    fields.set(key, [...fields.get(key) ?? [], line.slice(colon + 1).trim()]);
  }
  if (fields.get("version")?.[0] !== "STSv1") return { ok: false, reason: "version is not STSv1" };
  const mode = fields.get("mode")?.[0];
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") {
    return { ok: false, reason: `mode "${mode ?? ""}" is not enforce, testing or none` };
  }
  const maxAgeText = fields.get("max_age")?.[0] ?? "";
  if (!/^\d{1,10}$/.test(maxAgeText)) return { ok: false, reason: "max_age is missing or bad" };
  const maxAge = Math.min(Number(maxAgeText), MAX_AGE_LIMIT);
  const mx = (fields.get("mx") ?? []).map((m) => m.toLowerCase().replace(/\.$/, ""));
  if (mode !== "none" && mx.length === 0) return { ok: false, reason: "the policy lists no mx" };
  return { ok: true, policy: { mode, mx, maxAge } };
}

/** Whether `host` matches one of the policy's MX patterns (RFC 8461 §4.1). */
export function stsMxMatches(policy: Pick<StsPolicy, "mx">, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith("*.")) return pattern === h;
    const dot = h.indexOf(".");
    return dot > 0 && h.slice(dot + 1) === pattern.slice(2);
  });
}

/** The policy as RFC 8460 §4.3 `policy-string` lines, for TLS reports. */
export function stsPolicyStrings(policy: StsPolicy): string[] {
  return [
    "version: STSv1",
    `mode: ${policy.mode}`,
    ...policy.mx.map((m) => `mx: ${m}`),
    `max_age: ${policy.maxAge}`,
  ];
}
