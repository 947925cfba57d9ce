/**
 * The whole configuration, validated once at start-up. Every field has a documented default;
 * unknown fields are rejected so a typo in a config file is an error, not a silent no-op.
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from "../policy/retry_schedule.ts";
import {
  DEFAULT_WEBHOOK_RETRY_SCHEDULE,
  parseWebhookRetrySchedule,
} from "../policy/webhook_retry.ts";
import { parseRouteHost, parseRoutes, type Route, type Routes } from "./routes.ts";
import { parseCidr } from "../net/cidr.ts";
import { dnsServer, duration, retrySchedule as schedule } from "./fields.ts";
import { SANDBOX_FIELDS } from "./sandbox.ts";
import { ShapingSchema } from "./shaping.ts";
import { PoolsSchema } from "./pools.ts";
import { LIMIT_FIELDS } from "./limits.ts";
import { OUTBOUND_TLS_FIELDS } from "./outbound_tls.ts";
import { TLS_LEVELS } from "../policy/tls_level.ts";
import { CONTENT_FIELDS } from "./content.ts";
import { OUTBOUND_FIELDS } from "./outbound.ts";

const port = z.coerce.number().int().min(0).max(65535);

/** A route in the config file: its hosts, or `{hosts, auth: {user, pass}}` for a smarthost. */
const routeEntry = z.union([
  z.array(z.string()).min(1),
  z.object({
    hosts: z.array(z.string()).min(1),
    auth: z.object({ user: z.string().min(1), pass: z.string().min(1) }).strict().optional(),
    /** none, may, encrypt, verify or dane; unset: verify when the route logs in. */
    tls: z.enum(TLS_LEVELS).optional(),
  }).strict(),
]);

const routes = z.union([z.string(), z.record(z.string(), routeEntry)]).transform(
  (v, ctx): Routes => {
    try {
      if (typeof v === "string") return parseRoutes(v);
      const out: Routes = {};
      for (const [domain, entry] of Object.entries(v)) {
        const hosts = Array.isArray(entry) ? entry : entry.hosts;
        const route: Route = { hosts: hosts.map((h) => parseRouteHost(h, 25)) };
        if (!Array.isArray(entry) && entry.auth) route.auth = entry.auth;
        if (!Array.isArray(entry) && entry.tls) route.tls = entry.tls;
        out[domain.trim().toLowerCase()] = route;
      }
      return out;
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  },
);

const cidrList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const items = (typeof v === "string" ? v.split(",") : v).map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    try {
      parseCidr(item);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  }
  return items;
});

const webhookSchedule = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  try {
    return parseWebhookRetrySchedule(typeof v === "string" ? v : v.join(","));
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

export const ROLES = ["smtp", "http", "worker"] as const;
export type Role = (typeof ROLES)[number];

/** "smtp,worker" or ["smtp", "worker"]: which roles this node runs; at least one, no repeats. */
const roles = z.union([z.string(), z.array(z.string())]).transform((v, ctx): Role[] => {
  const items = (typeof v === "string" ? v.split(",") : v).map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const bad = items.find((r) => !(ROLES as readonly string[]).includes(r));
  if (bad !== undefined || items.length === 0) {
    ctx.addIssue({
      code: "custom",
      message: `expected a comma-separated list of ${ROLES.join(", ")}, got "${bad ?? v}"`,
    });
    return z.NEVER;
  }
  return ROLES.filter((r) => items.includes(r));
});

export const ConfigSchema = z.object({
  /** The roles this node runs: SMTP listeners, the HTTP API, delivery (and webhooks, retention). */
  roles: roles.default([...ROLES]),
  /** How long a node's hold on a destination site lasts unrenewed: a dead node's sites move then. */
  leaseTtl: duration.default(parseDuration("30s")).refine((v) => v >= 3_000, {
    message: "must be at least 3s",
  }),
  /** Folder for the KV file and the generated dev certificate. */
  dataDir: z.string().default("./data"),
  /** KV path or KV Connect URL; default `<dataDir>/postern.kv`. */
  kv: z.string().optional(),
  /**
   * How long a commit keeps trying while the store is locked or unreachable before the client
   * hears 451 (SMTP) or 503 (HTTP).
   */
  storeRetry: duration.default(parseDuration("10s")),
  /**
   * Longest wait for company before a commit that carries few changes starts, while changes
   * arrive closely (core/policy/commit_linger.ts); 0 commits each batch at once.
   */
  commitLinger: duration.default(parseDuration("20ms")).refine((v) => v <= 50, {
    message: "must be at most 50ms: acknowledgements wait for it",
  }),
  listen: z.string().default("0.0.0.0"),
  smtpPort: port.default(587),
  smtpsPort: port.default(465),
  httpPort: port.default(8080),
  hostname: z.string().min(1).optional(),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  adminToken: z.string().min(16).optional(),
  /**
   * Key that encrypts webhook signing secrets and DKIM private keys in the store (AES-256-GCM);
   * at least 32 characters, e.g. `openssl rand -base64 32`. Unset: a key generated once into
   * `<dataDir>/secret.key` (mode 0600).
   */
  secretKey: z.string().min(32, "must be at least 32 characters (openssl rand -base64 32)")
    .optional(),
  dns: dnsServer.optional(),
  mxPort: port.default(25),
  routes: routes.default({}),
  trustedNetworks: cidrList.default([]),
  /** The account that mail relayed from trusted networks (without AUTH) belongs to. */
  trustedAccount: z.string().trim().min(1).max(64).default("default"),
  /** The name sending domains' SPF records include (`include:<name>`); default the hostname. */
  spfInclude: z.string().trim().min(1).max(253).regex(
    /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/,
    "expected a domain name",
  ).optional(),
  retrySchedule: schedule.default(parseRetrySchedule(DEFAULT_RETRY_SCHEDULE)),
  maxAge: duration.default(parseDuration("5d")),
  /** Largest message accepted, in bytes (RFC 1870 SIZE). */
  maxMessageSize: z.coerce.number().int().positive().default(50 * 1024 * 1024),
  /** How long SIGTERM waits for open transactions and deliveries. */
  shutdownGrace: duration.default(parseDuration("20s")),
  /**
   * Outbound connect timeout (default 30s, from the shaping default profile) and the timeout of
   * commands RFC 5321 names none for (EHLO, STARTTLS, AUTH, RSET, QUIT); the others are in
   * outbound.ts. connectTimeout, connectionLimit and maxDeliveriesPerConnection feed the
   * `default` shaping profile when set; unset, the profile's own values apply (shaping.ts).
   */
  connectTimeout: duration.optional(),
  commandTimeout: duration.default(parseDuration("5m")),
  /** Per site: parallel connections and messages sent over one connection (default 10 / 100). */
  connectionLimit: z.coerce.number().int().positive().optional(),
  maxDeliveriesPerConnection: z.coerce.number().int().positive().optional(),
  /** Per-site limits: a default profile and per-provider overrides matched by MX suffix. */
  shaping: ShapingSchema.default({ default: {}, route: {}, provider: {} }),
  /** Named pools of source addresses; a pool named "default" serves mail that names none. */
  pools: PoolsSchema.default({}),
  /** An address that expires this many times in a row is suppressed. */
  suppressAfterExpiries: z.coerce.number().int().positive().default(3),
  /** How often a node re-reads the queue for work other nodes queued or retries came due. */
  pollInterval: duration.default(parseDuration("5s")),
  /** Networks webhooks may reach although private or loopback (e.g. 127.0.0.0/8 in tests). */
  webhookAllow: cidrList.default([]),
  /** Delay before each attempt of a webhook event; its sum is how long an event is tried. */
  webhookRetrySchedule: webhookSchedule.default(
    parseWebhookRetrySchedule(DEFAULT_WEBHOOK_RETRY_SCHEDULE),
  ),
  /** A webhook POST that has not answered by then counts as failed. */
  webhookTimeout: duration.default(parseDuration("5s")),
  /**
   * Readers of the event log stop this far short of now, so a commit that lands after its event
   * ids were made is never skipped by a cursor (core/store/events.ts).
   */
  eventSettle: duration.default(parseDuration("5s")),
  /**
   * VERP: each message's return path becomes b-<id>-<tag>@<bounceDomain>, whose MX should point
   * at the inbound listener, so asynchronous bounces and feedback reports find their message.
   */
  bounceDomain: z.string().trim().toLowerCase().regex(
    /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/,
    "expected a domain name such as bounces.example.com",
  ).optional(),
  /** Port of the inbound listener for the bounce domain (started when bounceDomain is set). */
  inboundPort: port.default(25),
  /** Messages, their events and index entries are deleted after this (bodies go first). */
  retention: duration.default(parseDuration("30d")),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Abuse limits: connections, lines, headers, recipients, errors, timeouts, AUTH, HTTP. */
  ...LIMIT_FIELDS,
  /** Outbound TLS: trust store, MTA-STS port, DNSSEC resolver (core/config/outbound_tls.ts). */
  ...OUTBOUND_TLS_FIELDS,
  /** Content filtering with rspamd, the hold queue and the abuse brake. */
  ...CONTENT_FIELDS,
  /** Outbound timeouts per SMTP step and the global outbound connection cap. */
  ...OUTBOUND_FIELDS,
  /** The sandbox: simulator domain and its short clocks (core/config/sandbox.ts). */
  ...SANDBOX_FIELDS,
}).strict();

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
