/**
 * Where a domain's mail goes: a static route (smarthost pool, tried in order) or the domain's
 * MX hosts by preference, each on the configured MX port; and the *site* those servers form.
 */
import { type RouteAuth, routeFor, type Routes } from "../core/config/routes.ts";
import type { RouteTls } from "../core/policy/tls_level.ts";
import { resolveMx, type Resolver } from "../core/mail/mx.ts";
import type { DnsFailure } from "../core/policy/dns_outcome.ts";
import { mxSiteKey, routeSiteKey } from "../core/policy/site.ts";

export interface Target {
  /** The name we looked up (MX or route host), for logs and events. */
  name: string;
  host: string;
  port: number;
  /** TLS from the first byte (smtps://, port 465). */
  implicitTls?: boolean;
}

export type Destination =
  | {
    ok: true;
    /** The site key: sorted MX names, or "route:<hosts>". */
    site: string;
    /** MX or route host names, which shaping profiles match by suffix. */
    hostNames: string[];
    targets: Target[];
    /** The route demands TLS (it logs in); shaping may demand it too. */
    requireTls: boolean;
    auth?: RouteAuth;
    /** Set for a static route (a smarthost): what it says about TLS. MX delivery: unset. */
    route?: RouteTls;
  }
  | { ok: false; site: string; permanent: boolean; failure: DnsFailure; reason: string };

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+)$/i;

export async function resolveDestination(
  domain: string,
  options: { routes: Routes; resolver: Resolver; mxPort: number },
): Promise<Destination> {
  const route = routeFor(options.routes, domain);
  if (route) {
    const site = routeSiteKey(route.hosts);
    const targets: Target[] = [];
    for (const hop of route.hosts) {
      const implicit = hop.implicitTls ? { implicitTls: true } : {};
      if (IP.test(hop.host)) {
        targets.push({ name: hop.host, host: hop.host, port: hop.port, ...implicit });
        continue;
      }
      for (const type of ["A", "AAAA"] as const) {
        try {
          for (const address of await options.resolver.addresses(hop.host, type)) {
            targets.push({ name: hop.host, host: address, port: hop.port, ...implicit });
          }
        } catch {
          // No address now: the route's other hosts may have one; none at all defers below.
        }
      }
    }
    if (targets.length === 0) {
      return {
        ok: false,
        site,
        permanent: false,
        failure: "temporary",
        reason: `route hosts for ${domain} did not resolve`,
      };
    }
    return {
      ok: true,
      site,
      hostNames: route.hosts.map((h) => h.host),
      targets,
      // Credentials never travel in clear: a route that logs in requires STARTTLS.
      requireTls: route.auth !== undefined,
      ...(route.auth ? { auth: route.auth } : {}),
      route: { auth: route.auth !== undefined, ...(route.tls ? { tls: route.tls } : {}) },
    };
  }
  const mx = await resolveMx(options.resolver, domain);
  // A domain that does not resolve is its own site until it does.
  if (!mx.ok) return { ...mx, site: domain };
  const hostNames = [...new Set(mx.hosts.map((h) => h.name))];
  return {
    ok: true,
    site: mxSiteKey(hostNames),
    hostNames,
    requireTls: false,
    targets: mx.hosts.map((h) => ({ name: h.name, host: h.address, port: options.mxPort })),
  };
}
