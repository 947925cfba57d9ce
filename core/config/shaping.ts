/**
 * Traffic shaping as data, in the shape of KumoMTA's shaping.toml: a `default` profile and
 * per-provider overrides matched by MX host suffix, so every domain Google hosts gets Google's
 * limits. A user's config file (`shaping` in POSTERN_CONFIG) overrides fields of the built-in
 * profiles or adds providers; unknown fields are rejected.
 *
 * Layering, lowest first: the built-in default → the file's `shaping.default` → the global
 * settings that are set explicitly (POSTERN_CONNECTION_LIMIT, POSTERN_MAX_DELIVERIES_PER_CONNECTION,
 * POSTERN_CONNECT_TIMEOUT, in the environment or as top-level keys) → a provider's own fields.
 *
 * @module
 */
import { z } from "zod";
import { duration, rate } from "./fields.ts";
import { formatDuration, type Rate } from "../policy/duration.ts";
import { TLS_LEVELS, type TlsLevel } from "../policy/tls_level.ts";

const PROFILE_FIELDS = {
  /** Parallel connections from this node to the site. */
  connection_limit: z.number().int().positive(),
  /** Transactions one connection carries before it is closed (RFC 5321 leaves this open). */
  max_deliveries_per_connection: z.number().int().positive(),
  /** Messages per period to the site, "100/min"; null: unlimited. */
  max_message_rate: rate.nullable(),
  /** TCP connect timeout; the next MX host is tried at once after it. */
  connect_timeout: duration,
  /** How long an idle connection waits for more work before QUIT. */
  idle_timeout: duration,
  /** Never send in clear: a missing or failing STARTTLS defers (tls_failure). */
  require_tls: z.boolean(),
  /** Outbound TLS level (none, may, encrypt, verify, dane); unset: `require_tls` decides. */
  tls_level: z.enum(TLS_LEVELS).optional(),
  /** After a throttling reply (421, rate limited, too many connections): how long the site's
   * concurrency stays halved and its rate slowed before both recover. */
  backoff_cooldown: duration,
  /** The rate while cooling down when the site has no `max_message_rate` (else half of it). */
  backoff_message_rate: rate,
  /** A host that failed to connect is skipped for this long (MX hosts and smarthosts alike). */
  failed_host_cooldown: duration,
};

const ProfileInput = z.object(PROFILE_FIELDS).partial().strict();
/** An MX host suffix: "google.com" matches "aspmx.l.google.com" and "google.com" itself. */
const suffix = z.string().trim().min(1).transform((s) => s.toLowerCase().replace(/^\.|\.$/g, ""));
const ProviderInput = z.object({ match: z.array(suffix).min(1), ...PROFILE_FIELDS }).partial()
  .strict();

export type ProfileInput = z.input<typeof ProfileInput>;
type ParsedProfile = z.output<typeof ProfileInput>;
type ParsedProvider = z.output<typeof ProviderInput>;

/** The built-in default profile. README's shaping table lists these values. */
export const DEFAULT_PROFILE = {
  connection_limit: 10,
  max_deliveries_per_connection: 100,
  max_message_rate: null,
  connect_timeout: "30s", // RFC 5321 §4.5.3.2 leaves it open; Postfix's smtp_connect_timeout
  idle_timeout: "5s",
  require_tls: false,
  backoff_cooldown: "5m",
  backoff_message_rate: "60/min",
  failed_host_cooldown: "1m",
} satisfies ProfileInput;

/**
 * Built-in providers. The large mailbox providers all publish that they expect TLS and punish
 * many parallel connections or long connection reuse from one sender; these limits are the
 * conservative end of what their postmaster pages and KumoMTA's shipped shaping.toml use.
 */
export const BUILTIN_PROVIDERS = {
  google: {
    match: ["google.com", "googlemail.com"],
    connection_limit: 5,
    max_deliveries_per_connection: 50,
    require_tls: true,
  },
  outlook: {
    match: ["outlook.com", "protection.outlook.com"],
    connection_limit: 10,
    max_deliveries_per_connection: 100,
    require_tls: true,
  },
  yahoo: {
    match: ["yahoodns.net"],
    connection_limit: 5,
    max_deliveries_per_connection: 20,
    require_tls: true,
  },
  icloud: {
    match: ["icloud.com", "mail.icloud.com"],
    connection_limit: 5,
    max_deliveries_per_connection: 50,
    require_tls: true,
  },
} satisfies Record<string, z.input<typeof ProviderInput>>;

const PROVIDER_NAME = /^[A-Za-z0-9_.-]+$/;

export const ShapingSchema = z.object({
  default: ProfileInput.default({}),
  route: ProfileInput.default({}),
  provider: z.record(z.string().regex(PROVIDER_NAME, "letters, digits, . _ -"), ProviderInput)
    .default({}),
}).strict().superRefine((s, ctx) => {
  for (const [name, p] of Object.entries(s.provider)) {
    if (!p.match && !(name in BUILTIN_PROVIDERS)) {
      ctx.addIssue({
        code: "custom",
        path: ["provider", name, "match"],
        message: `provider "${name}" needs "match": a list of MX host suffixes`,
      });
    }
  }
});

export type ShapingInput = z.input<typeof ShapingSchema>;

/** One site's limits, resolved; every number in milliseconds. */
export interface SiteProfile {
  /** "default" or the provider whose suffix matched. */
  name: string;
  connectionLimit: number;
  maxDeliveriesPerConnection: number;
  maxMessageRate: Rate | null;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  requireTls: boolean;
  /** The profile's own TLS level, when it names one (core/policy/tls_level.ts). */
  tlsLevel?: TlsLevel | undefined;
  backoffCooldownMs: number;
  backoffMessageRate: Rate;
  failedHostCooldownMs: number;
}

export interface Shaping {
  default: SiteProfile;
  /** Sites that are routes (a smarthost or a host of the operator's): see ROUTE_CONNECTION_LIMIT. */
  route: SiteProfile;
  providers: { name: string; match: string[]; profile: SiteProfile }[];
}

/**
 * A route's hosts are the operator's own relay or a provider's submission service, not a mailbox
 * provider to be polite to, so its sites open more connections unless a connection limit was set
 * (in `shaping.default`, `shaping.route` or POSTERN_CONNECTION_LIMIT). Postfix's own default is
 * 20 per destination; with 10, a relay saturated by one-connection-per-message clients queued
 * mail faster than it delivered it.
 */
export const ROUTE_CONNECTION_LIMIT = 50;

/** Global settings that feed the default profile when they were set explicitly. */
export interface ShapingGlobals {
  connectionLimit?: number | undefined;
  maxDeliveriesPerConnection?: number | undefined;
  connectTimeout?: number | undefined;
}

function overlay(base: SiteProfile, p: ParsedProfile, name: string): SiteProfile {
  return {
    name,
    connectionLimit: p.connection_limit ?? base.connectionLimit,
    maxDeliveriesPerConnection: p.max_deliveries_per_connection ??
      base.maxDeliveriesPerConnection,
    maxMessageRate: p.max_message_rate === undefined ? base.maxMessageRate : p.max_message_rate,
    connectTimeoutMs: p.connect_timeout ?? base.connectTimeoutMs,
    idleTimeoutMs: p.idle_timeout ?? base.idleTimeoutMs,
    requireTls: p.require_tls ?? base.requireTls,
    ...(p.tls_level ?? base.tlsLevel ? { tlsLevel: p.tls_level ?? base.tlsLevel } : {}),
    backoffCooldownMs: p.backoff_cooldown ?? base.backoffCooldownMs,
    backoffMessageRate: p.backoff_message_rate ?? base.backoffMessageRate,
    failedHostCooldownMs: p.failed_host_cooldown ?? base.failedHostCooldownMs,
  };
}

const BUILTIN_DEFAULT: SiteProfile = (() => {
  const p = ProfileInput.parse(DEFAULT_PROFILE);
  return {
    name: "default",
    connectionLimit: p.connection_limit!,
    maxDeliveriesPerConnection: p.max_deliveries_per_connection!,
    maxMessageRate: p.max_message_rate ?? null,
    connectTimeoutMs: p.connect_timeout!,
    idleTimeoutMs: p.idle_timeout!,
    requireTls: p.require_tls!,
    backoffCooldownMs: p.backoff_cooldown!,
    backoffMessageRate: p.backoff_message_rate!,
    failedHostCooldownMs: p.failed_host_cooldown!,
  };
})();

/** Resolves the validated `shaping` config and the global settings into profiles. */
export function resolveShaping(
  input: z.output<typeof ShapingSchema>,
  globals: ShapingGlobals = {},
): Shaping {
  let base = overlay(BUILTIN_DEFAULT, input.default, "default");
  base = overlay(base, {
    ...(globals.connectionLimit !== undefined ? { connection_limit: globals.connectionLimit } : {}),
    ...(globals.maxDeliveriesPerConnection !== undefined
      ? { max_deliveries_per_connection: globals.maxDeliveriesPerConnection }
      : {}),
    ...(globals.connectTimeout !== undefined ? { connect_timeout: globals.connectTimeout } : {}),
  }, "default");
  const routeLimit = globals.connectionLimit ?? input.default.connection_limit ??
    ROUTE_CONNECTION_LIMIT;
  const route = overlay(
    overlay(base, { connection_limit: routeLimit }, "route"),
    input.route,
    "route",
  );
  const names = new Set([...Object.keys(BUILTIN_PROVIDERS), ...Object.keys(input.provider)]);
  const providers: Shaping["providers"] = [];
  for (const name of names) {
    const builtin = (BUILTIN_PROVIDERS as Record<string, z.input<typeof ProviderInput>>)[name];
    const parsedBuiltin: ParsedProvider = builtin ? ProviderInput.parse(builtin) : {};
    const user = input.provider[name] ?? {};
    const { match: builtinMatch, ...builtinFields } = parsedBuiltin;
    const { match: userMatch, ...userFields } = user;
    const profile = overlay(overlay(base, builtinFields, name), userFields, name);
    providers.push({ name, match: userMatch ?? builtinMatch ?? [], profile });
  }
  return { default: base, route, providers };
}

/** Whether `host` is `suffix` or ends with "." + `suffix`. */
export function hostMatches(host: string, suffix: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return h === suffix || h.endsWith("." + suffix);
}

/**
 * The profile for a site whose hosts (MX or route host names) are `hostNames`. Instead of the
 * first provider listed, the longest matching suffix wins, to avoid a user's broad entry
 * ("outlook.com") shadowing a narrower one ("eu.protection.outlook.com") by file order.
 */
export function profileFor(
  shaping: Shaping,
  hostNames: readonly string[],
  isRoute = false,
): SiteProfile {
  let best: { length: number; profile: SiteProfile } | null = null;
  for (const provider of shaping.providers) {
    for (const suffix of provider.match) {
      if (hostNames.some((h) => hostMatches(h, suffix))) {
        if (!best || suffix.length > best.length) {
          best = { length: suffix.length, profile: provider.profile };
        }
      }
    }
  }
  return best?.profile ?? (isRoute ? shaping.route : shaping.default);
}

export function formatRate(r: Rate | null): string | null {
  if (r === null) return null;
  const per: Record<number, string> = {
    1_000: "s",
    60_000: "min",
    3_600_000: "h",
    86_400_000: "day",
  };
  return `${r.count}/${per[r.perMs] ?? formatDuration(r.perMs)}`;
}

/** A profile as the queue API shows it: the config file's names and notation. */
export function profileView(p: SiteProfile) {
  return {
    profile: p.name,
    connection_limit: p.connectionLimit,
    max_deliveries_per_connection: p.maxDeliveriesPerConnection,
    max_message_rate: formatRate(p.maxMessageRate),
    connect_timeout: formatDuration(p.connectTimeoutMs),
    idle_timeout: formatDuration(p.idleTimeoutMs),
    require_tls: p.requireTls,
    backoff_cooldown: formatDuration(p.backoffCooldownMs),
  };
}
