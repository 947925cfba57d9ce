/**
 * Outbound TLS levels, named as Postfix's smtp_tls_security_level names them, and which one
 * applies to a connection. Pure: routing and shaping hand in what they know.
 *
 * - `none`: never STARTTLS.
 * - `may`: STARTTLS when offered, any certificate (opportunistic, RFC 7435).
 * - `encrypt`: STARTTLS required, any certificate.
 * - `verify`: STARTTLS (or implicit TLS) required, the chain must lead to a trusted root
 *   (POSTERN_CA_FILE or the system roots) and the certificate must name the host.
 * - `dane`: the certificate must match the host's DNSSEC-signed TLSA records when it has usable
 *   ones (RFC 7672); without them, as `may`.
 *
 * @module
 */

export const TLS_LEVELS = ["none", "may", "encrypt", "verify", "dane"] as const;
export type TlsLevel = typeof TLS_LEVELS[number];

export function isTlsLevel(value: unknown): value is TlsLevel {
  return typeof value === "string" && (TLS_LEVELS as readonly string[]).includes(value);
}

/** What a site's shaping profile says about TLS. */
export interface ProfileTls {
  /** The profile's `tls_level`, when it names one. */
  tlsLevel?: TlsLevel | undefined;
  /** The older `require_tls: true`, kept working as `encrypt`. */
  requireTls: boolean;
}

/** What a static route says about TLS. */
export interface RouteTls {
  /** The route's own `tls` setting, when it has one: explicit, so it wins. */
  tls?: TlsLevel | undefined;
  /** The route logs in (SMTP AUTH) at the smarthost. */
  auth: boolean;
}

/**
 * The level for one connection. A route's own setting wins; a route that logs in is `verify`
 * unless its own settings say otherwise, so a password never reaches a host that was not
 * authenticated; then the profile's level; `require_tls` means `encrypt`; else `may`.
 */
export function tlsLevelFor(profile: ProfileTls, route?: RouteTls): TlsLevel {
  if (route?.tls) return route.tls;
  if (route?.auth) return "verify";
  if (profile.tlsLevel) return profile.tlsLevel;
  return profile.requireTls ? "encrypt" : "may";
}
