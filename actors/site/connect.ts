/**
 * Opening a site's connection for a job: the hosts of its destination in turn, skipping those
 * cooling down after a failure, and failing over to the next host when one cannot be reached.
 * An attempt that gets no connection comes back as the outcome to record, the most telling
 * failure.
 */
import type { Logger } from "../../core/log.ts";
import {
  type ConnectFailure,
  OutboundSession,
  tlsResultOf,
} from "../../delivery/outbound_session.ts";
import type { AttemptOutcome } from "./attempt.ts";
import { describe } from "./host_cooldown.ts";
import type { SiteInfo } from "../site_directory.ts";
import type { Job } from "./job.ts";
import type { SiteState } from "./state.ts";
import { isThrottling } from "../../core/policy/classify.ts";
import type { Source } from "./source_chooser.ts";
import type { OutboundTls } from "../outbound_tls.ts";
import { requirementFor } from "../../core/policy/tls_requirement.ts";
import type { StsPolicy } from "../../core/policy/mta_sts.ts";
import type { ReplyTimeouts } from "../../delivery/reply_timeouts.ts";

export interface ConnectDeps {
  log: Logger;
  timeouts: ReplyTimeouts;
  now(): number;
  tls?: OutboundTls | undefined;
}

/** An attempt that ended before any transaction: what to record for it. */
export interface Unsent {
  outcome: AttemptOutcome;
  /** The failure came before any transaction: defer, never bounce. */
  neverBounce?: boolean;
  ms?: number;
}

/** A session to the first reachable host of the site's destination, or why there is none. */
export async function openSession(
  deps: ConnectDeps,
  site: SiteState,
  job: Job,
  source: Source,
  info: SiteInfo,
): Promise<{ session: OutboundSession } | { unsent: Unsent }> {
  const { now, log } = deps;
  const { hostsDown, shaping } = site;
  const destination = info.destination;
  if (!destination.ok) {
    return {
      unsent: {
        outcome: {
          kind: destination.permanent ? "permanent" : "transient",
          reply: destination.reason,
          dns: destination.failure,
        },
      },
    };
  }
  const up = destination.targets.filter((t) => hostsDown.isUp(t, now()));
  if (up.length === 0) {
    // Every host failed a moment ago: defer this round without hammering them again.
    const down = hostsDown.get(destination.targets[0]!);
    return { unsent: { outcome: { kind: "transient", reply: down?.reason ?? "no hosts" } } };
  }
  const failures: { text: string; reply: string; code?: number; tls: boolean }[] = [];
  const tls = deps.tls;
  const domain = job.due.domain;
  // MTA-STS is for MX delivery; a route's smarthost is the operator's choice, not the domain's.
  const sts: StsPolicy | null = tls && !destination.route && info.tlsLevel !== "none"
    ? await tls.stsPolicy(domain)
    : null;
  const started = performance.now();
  for (const target of up) {
    const tried = performance.now();
    const daneHere = tls?.daneEnabled && info.tlsLevel !== "none" &&
      (!destination.route || info.tlsLevel === "dane");
    const tlsa = daneHere ? await tls!.tlsa(target.name, target.port) : null;
    const need = requirementFor(info.tlsLevel, { name: target.name, sts, tlsa }, domain);
    const reportPolicy = need.policy === "tlsa" && tlsa
      ? { type: "tlsa" as const, tlsa }
      : sts && sts.mode !== "none"
      ? { type: "sts" as const, sts }
      : { type: "no-policy-found" as const };
    if (!need.ok) {
      failures.push({ text: need.reason, reply: `ETLS: ${need.reason}`, tls: true });
      void tls?.report(domain, reportPolicy, "validation-failure", target.name);
      continue;
    }
    try {
      const session = await OutboundSession.open(target, {
        heloName: source.ehlo,
        ...(source.address ? { localAddress: source.address } : {}),
        connectTimeoutMs: shaping.profile.connectTimeoutMs,
        timeouts: deps.timeouts,
        peer: need.check,
        ...(tls?.ca ? { ca: tls.ca } : {}),
        ...(destination.auth ? { auth: destination.auth } : {}),
      });
      session.policyKey = tlsPolicyKey(info, tls);
      const details = session.info.tlsDetails;
      if (details && need.check.kind !== "none") {
        // A testing policy is reported as if enforced: would this session have passed?
        const stsTestFailed = reportPolicy.type === "sts" && need.check.kind === "any" &&
          !details.verified;
        void tls?.report(
          domain,
          reportPolicy,
          stsTestFailed ? tlsResultOf({ message: details.verifyError ?? "" }) : "success",
          target.name,
        );
      } else if (!details && reportPolicy.type !== "no-policy-found") {
        void tls?.report(domain, reportPolicy, "starttls-not-supported", target.name);
      }
      log.debug("delivery.connected", {
        site: site.site,
        host: target.host,
        port: target.port,
        source: source.address ?? null,
      });
      return { session };
    } catch (err) {
      const e = err as ConnectFailure;
      const text = describe(target, err);
      log.info("delivery.connect_failed", {
        site: site.site,
        domain: job.due.domain,
        host: `${target.host}:${target.port}`,
        source: source.address ?? null,
        error: text,
        ms: Math.round(performance.now() - tried),
      });
      // Instead of trying a dead host once per queued message, skip it for a while; but not
      // for a certificate one domain's policy refused, which another domain's mail may accept.
      const policyRefused = e.tlsFailure === true && need.check.kind !== "any";
      if (!policyRefused) {
        hostsDown.markDown(target, {
          until: now() + shaping.profile.failedHostCooldownMs,
          reason: text,
        });
      }
      const code = e.responseCode;
      if (code && code >= 400 && code < 500 && isThrottling(e.message)) {
        shaping.noteThrottle(source.address);
      }
      // A TLS refusal is reported as such (tls_failure), whatever reply code came with it.
      const tlsFailed = e.tlsFailure === true;
      if (tlsFailed) {
        void tls?.report(domain, reportPolicy, e.tlsResult ?? "validation-failure", target.name);
      }
      const why = tlsFailed && need.check.kind === "ca" && need.check.by === "mta-sts"
        ? ` (MTA-STS policy of ${domain} requires a verified certificate for ${target.name})`
        : "";
      failures.push({
        text,
        reply: tlsFailed ? `ETLS: ${e.message}${why}` : code ? e.message : text,
        ...(code && !tlsFailed ? { code } : {}),
        tls: tlsFailed,
      });
    }
  }
  // Report the most telling failure: a TLS refusal, then a server's reply, then the last one.
  const worst = failures.find((f) => f.tls) ?? failures.find((f) => f.code) ?? failures.at(-1)!;
  return {
    unsent: {
      outcome: {
        kind: "transient",
        reply: worst.reply,
        ...(worst.code ? { code: worst.code } : {}),
      },
      neverBounce: true,
      ms: Math.round(performance.now() - started),
    },
  };
}

/**
 * The TLS policy a domain's mail is held to, as far as known without a lookup: its level, and
 * for MX delivery whose MTA-STS policy. A session checked against one is reused for no other.
 */
export function tlsPolicyKey(info: SiteInfo, tls: OutboundTls | undefined): string {
  const policy = !info.destination.ok || info.destination.route || !tls
    ? "route"
    : tls.policyKey(info.domain) ?? "unknown";
  return `${info.tlsLevel}:${policy}`;
}
