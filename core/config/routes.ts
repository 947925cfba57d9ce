import { isTlsLevel, type TlsLevel } from "../policy/tls_level.ts";

/**
 * Static routes: `example.com=127.0.0.1:2526|127.0.0.1:2527,*=smtp.upstream:587`. A host written
 * `smtps://host[:port]` (or on port 465) speaks TLS from the first byte (RFC 8314); a route may
 * end in `;tls=<level>` (none, may, encrypt, verify, dane).
 * A route's hosts form a smarthost pool tried in order; `*` catches every other domain. In the
 * config file a route may also carry SMTP AUTH credentials for the upstream smarthost.
 */

export interface RouteHost {
  host: string;
  port: number;
  /** Implicit TLS (smtps://, or port 465) instead of STARTTLS. */
  implicitTls?: boolean;
}

/** Credentials for SMTP AUTH (RFC 4954) at an upstream smarthost. */
export interface RouteAuth {
  user: string;
  pass: string;
}

export interface Route {
  hosts: RouteHost[];
  auth?: RouteAuth;
  /** The route's own TLS level; unset: `verify` when it logs in, else the profile's. */
  tls?: TlsLevel;
}

/** `tls=<level>` of a route, or an error naming the levels. */
export function parseTlsLevel(text: string): TlsLevel {
  const level = text.trim().toLowerCase();
  if (!isTlsLevel(level)) {
    throw new Error(`Unknown TLS level "${text}": expected none, may, encrypt, verify or dane`);
  }
  return level;
}

export type Routes = Record<string, Route>;

export function parseRouteHost(text: string, defaultPort: number): RouteHost {
  const smtps = /^smtps:\/\//i.test(text.trim());
  const plain = parseBareRouteHost(
    text.trim().replace(/^smtps?:\/\//i, ""),
    smtps ? 465 : defaultPort,
  );
  return smtps || plain.port === 465 ? { ...plain, implicitTls: true } : plain;
}

function parseBareRouteHost(text: string, defaultPort: number): RouteHost {
  const trimmed = text.trim();
  // [v6]:port, host:port, or a bare host
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(trimmed);
  if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : defaultPort };
  const parts = trimmed.split(":");
  if (parts.length > 2) {
    throw new Error(`Cannot parse route host "${text}": write IPv6 addresses as [addr]:port`);
  }
  const host = parts[0]!;
  const port = parts[1] === undefined ? defaultPort : Number(parts[1]);
  if (!host || !/^[A-Za-z0-9.\-_]+$/.test(host)) {
    throw new Error(`Cannot parse route host "${text}": expected host[:port]`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Cannot parse route host "${text}": port must be 1-65535`);
  }
  return { host, port };
}

export function parseRoutes(text: string, defaultPort = 25): Routes {
  const routes: Routes = {};
  for (const item of text.split(",")) {
    if (!item.trim()) continue;
    const eq = item.indexOf("=");
    if (eq < 1) {
      throw new Error(`Cannot parse route "${item}": expected domain=host[:port][|host[:port]]`);
    }
    const domain = item.slice(0, eq).trim().toLowerCase();
    const [hostList, ...options] = item.slice(eq + 1).split(";");
    const hosts = hostList!.split("|").map((h) => parseRouteHost(h, defaultPort));
    if (hosts.length === 0) throw new Error(`Cannot parse route "${item}": no hosts`);
    const route: Route = { hosts };
    for (const option of options) {
      const m = /^\s*tls\s*=\s*(\S+)\s*$/i.exec(option);
      if (!m) throw new Error(`Cannot parse route "${item}": unknown option "${option}"`);
      route.tls = parseTlsLevel(m[1]!);
    }
    routes[domain] = route;
  }
  return routes;
}

/** The route for a domain: an exact match, then a parent-domain match, then `*`. */
export function routeFor(routes: Routes, domain: string): Route | undefined {
  const d = domain.toLowerCase();
  if (routes[d]) return routes[d];
  const labels = d.split(".");
  for (let i = 1; i < labels.length - 1; i++) {
    const parent = "." + labels.slice(i).join(".");
    if (routes[parent]) return routes[parent];
  }
  return routes["*"];
}
