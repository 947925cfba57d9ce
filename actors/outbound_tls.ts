/**
 * The recipient domain's published TLS policies, as delivery needs them: its MTA-STS policy
 * (RFC 8461: TXT id, fetch, the KV cache refreshed when the id changes) and the TLSA records of
 * its MX hosts (RFC 7672, only from the DNSSEC-validating resolver); and the TLS report counter
 * each session adds to (RFC 8460).
 *
 * A fetch or lookup failure never blocks delivery by itself: without a cached policy that is
 * still in force, the domain has none.
 */
import type { Logger } from "../core/log.ts";
import { parseStsRecord, type StsPolicy, stsPolicyStrings } from "../core/policy/mta_sts.ts";
import type { TlsaRecord } from "../core/policy/dane.ts";
import { getStsPolicy, putStsPolicy } from "../core/store/mta_sts_cache.ts";
import type { Committer } from "../core/store/committer.ts";
import { recordTlsResult, type TlsReportPolicy } from "../core/store/tls_reports.ts";
import type { StsFetchResult } from "../core/mail/mta_sts_fetch.ts";
import { utcDate } from "../core/policy/tls_report.ts";

export interface OutboundTlsDeps {
  kv: Deno.Kv;
  /** The group committer: session counters ride in its batches instead of commits of their own. */
  committer?: Committer;
  log: Logger;
  now(): number;
  /** TXT records of a name, through POSTERN_DNS; [] when there are none. */
  txt(name: string): Promise<string[]>;
  fetchPolicy(domain: string): Promise<StsFetchResult>;
  /** DNSSEC-validated TLSA records (null: none, or not validated); unset: DANE is off. */
  tlsa?: (name: string) => Promise<TlsaRecord[] | null>;
  /** Trusted roots (POSTERN_CA_FILE). */
  ca?: string[] | undefined;
  /** How long a TXT answer is believed before asking again. @default 60000 */
  recheckMs?: number;
}

export class OutboundTls {
  readonly ca: string[] | undefined;
  #deps: OutboundTlsDeps;
  #sts = new Map<string, { policy: StsPolicy | null; until: number }>();
  #pending = new Map<string, Promise<StsPolicy | null>>();

  constructor(deps: OutboundTlsDeps) {
    this.#deps = deps;
    this.ca = deps.ca;
  }

  get daneEnabled(): boolean {
    return this.#deps.tlsa !== undefined;
  }

  /** A key equal for two domains whose MX sessions are held to the same policy. */
  policyKey(domain: string): string | undefined {
    const known = this.#sts.get(domain);
    if (!known) return undefined;
    return known.policy && known.policy.mode !== "none" ? `sts:${domain}` : "plain";
  }

  /** The domain's MTA-STS policy in force, or null. */
  stsPolicy(domain: string): Promise<StsPolicy | null> {
    const known = this.#sts.get(domain);
    if (known && known.until > this.#deps.now()) return Promise.resolve(known.policy);
    let pending = this.#pending.get(domain);
    if (!pending) {
      pending = this.#lookup(domain).then((policy) => {
        this.#sts.set(domain, {
          policy,
          until: this.#deps.now() + (this.#deps.recheckMs ?? 60_000),
        });
        return policy;
      }).finally(() => this.#pending.delete(domain));
      this.#pending.set(domain, pending);
    }
    return pending;
  }

  async #lookup(domain: string): Promise<StsPolicy | null> {
    const { kv, log, now } = this.#deps;
    const cached = await getStsPolicy(kv, domain);
    const inForce = cached && cached.expiresAt > now() ? cached : null;
    let id: string | null;
    try {
      id = parseStsRecord(await this.#deps.txt(`_mta-sts.${domain}`));
    } catch (err) {
      log.info("mta_sts.txt_failed", { domain, error: String(err) });
      return inForce?.policy ?? null;
    }
    // No record: a cached policy still holds until it expires (RFC 8461 §3.3).
    if (id === null) return inForce?.policy ?? null;
    if (inForce && inForce.id === id) return inForce.policy;
    const fetched = await this.#deps.fetchPolicy(domain);
    if (!fetched.ok) {
      log.info("mta_sts.fetch_failed", { domain, reason: fetched.reason });
      return inForce?.policy ?? null;
    }
    const at = now();
    await putStsPolicy(kv, domain, {
      id,
      policy: fetched.policy,
      fetchedAt: at,
      expiresAt: at + fetched.policy.maxAge * 1000,
    });
    log.info("mta_sts.policy", { domain, id, mode: fetched.policy.mode });
    return fetched.policy;
  }

  /** TLSA records of an MX host (`_25._tcp.<host>`), when DANE is on; null when none. */
  async tlsa(host: string, port: number): Promise<TlsaRecord[] | null> {
    if (!this.#deps.tlsa) return null;
    try {
      return await this.#deps.tlsa(`_${port}._tcp.${host}`);
    } catch (err) {
      this.#deps.log.info("dane.tlsa_failed", { host, error: String(err) });
      return null;
    }
  }

  /** Counts one session for the domain's daily TLS report; never throws. */
  async report(
    domain: string,
    policy: { type: "sts"; sts: StsPolicy } | { type: "tlsa"; tlsa: TlsaRecord[] } | {
      type: "no-policy-found";
    },
    result: string,
    mx: string,
  ): Promise<void> {
    const described: TlsReportPolicy = policy.type === "sts"
      ? { type: "sts", strings: stsPolicyStrings(policy.sts), mxHosts: policy.sts.mx }
      : policy.type === "tlsa"
      ? {
        type: "tlsa",
        strings: policy.tlsa.map((r) =>
          `${r.usage} ${r.selector} ${r.matchingType} ${
            [...r.data].map((b) => b.toString(16).padStart(2, "0")).join("")
          }`
        ),
        mxHosts: [],
      }
      : { type: "no-policy-found", strings: [], mxHosts: [] };
    try {
      await recordTlsResult(this.#deps.committer ?? this.#deps.kv, {
        day: utcDate(this.#deps.now()),
        domain,
        policy: described,
        result,
        mx,
      });
    } catch (err) {
      this.#deps.log.warn("tlsrpt.record_failed", { domain, error: String(err) });
    }
  }
}
