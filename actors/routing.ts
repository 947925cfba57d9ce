/**
 * Where a destination's mail goes: a static route (smarthost pool, tried in order) or the
 * domain's MX hosts by preference, each on the configured MX port.
 */
import { routeFor, type Routes } from "../core/config/routes.ts";
import { NoRecordsError, resolveMx, type Resolver } from "../core/mail/mx.ts";

export interface Target {
  /** The name we looked up (MX or route host), for logs and events. */
  name: string;
  host: string;
  port: number;
}

export type Destination =
  | { ok: true; targets: Target[]; requireTls: boolean }
  | { ok: false; permanent: boolean; reason: string };

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+)$/i;

export async function resolveDestination(
  domain: string,
  options: { routes: Routes; resolver: Resolver; mxPort: number },
): Promise<Destination> {
  const route = routeFor(options.routes, domain);
  if (route) {
    const targets: Target[] = [];
    for (const hop of route) {
      if (IP.test(hop.host)) {
        targets.push({ name: hop.host, host: hop.host, port: hop.port });
        continue;
      }
      for (const type of ["A", "AAAA"] as const) {
        try {
          for (const address of await options.resolver.addresses(hop.host, type)) {
            targets.push({ name: hop.host, host: address, port: hop.port });
          }
        } catch (err) {
          if (!(err instanceof NoRecordsError)) continue;
        }
      }
    }
    if (targets.length === 0) {
      return { ok: false, permanent: false, reason: `route hosts for ${domain} did not resolve` };
    }
    return { ok: true, targets, requireTls: false };
  }
  const mx = await resolveMx(options.resolver, domain);
  if (!mx.ok) return mx;
  return {
    ok: true,
    requireTls: false,
    targets: mx.hosts.map((h) => ({ name: h.name, host: h.address, port: options.mxPort })),
  };
}
