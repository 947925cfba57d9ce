/**
 * The whole configuration, validated once at start-up. Every field has a documented default;
 * unknown fields are rejected so a typo in a config file is an error, not a silent no-op.
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from "../policy/retry_schedule.ts";
import { parseRoutes, type Routes } from "./routes.ts";
import { parseCidr } from "../net/cidr.ts";

const port = z.coerce.number().int().min(0).max(65535);

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return typeof v === "number" ? v : parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

const routes = z.union([z.string(), z.record(z.string(), z.array(z.string()))]).transform(
  (v, ctx): Routes => {
    try {
      const text = typeof v === "string"
        ? v
        : Object.entries(v).map(([d, hosts]) => `${d}=${hosts.join("|")}`).join(",");
      return parseRoutes(text);
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

const schedule = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  try {
    return parseRetrySchedule(typeof v === "string" ? v : v.join(","));
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

const dnsServer = z.string().transform((v, ctx) => {
  const m = /^\[?([0-9A-Fa-f:.]+?)\]?(?::(\d+))?$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: "custom", message: `expected ip or ip:port, got "${v}"` });
    return z.NEVER;
  }
  return { ipAddr: m[1]!, port: m[2] ? Number(m[2]) : 53 };
});

export const ConfigSchema = z.object({
  /** Folder for the KV file and the generated dev certificate. */
  dataDir: z.string().default("./data"),
  /** KV path or KV Connect URL; default `<dataDir>/postern.kv`. */
  kv: z.string().optional(),
  listen: z.string().default("0.0.0.0"),
  smtpPort: port.default(587),
  smtpsPort: port.default(465),
  httpPort: port.default(8080),
  hostname: z.string().min(1).optional(),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  adminToken: z.string().min(16).optional(),
  dns: dnsServer.optional(),
  mxPort: port.default(25),
  routes: routes.default({}),
  trustedNetworks: cidrList.default([]),
  retrySchedule: schedule.default(parseRetrySchedule(DEFAULT_RETRY_SCHEDULE)),
  maxAge: duration.default(parseDuration("5d")),
  /** Largest message accepted, in bytes (RFC 1870 SIZE). */
  maxMessageSize: z.coerce.number().int().positive().default(50 * 1024 * 1024),
  /** How long SIGTERM waits for open transactions and deliveries. */
  shutdownGrace: duration.default(parseDuration("20s")),
  /** Outbound: connection and command timeouts. */
  connectTimeout: duration.default(parseDuration("5s")),
  commandTimeout: duration.default(parseDuration("60s")),
  /** Per destination: parallel connections and messages sent over one connection. */
  connectionLimit: z.coerce.number().int().positive().default(10),
  maxDeliveriesPerConnection: z.coerce.number().int().positive().default(100),
  /** How often a node re-reads the queue for work other nodes queued or retries came due. */
  pollInterval: duration.default(parseDuration("5s")),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
}).strict();

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
