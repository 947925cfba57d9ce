/**
 * The only reader of environment variables and config files. Env overrides the JSON file named by
 * POSTERN_CONFIG; the merged input is validated once by the zod schema.
 */
import { type Config, ConfigSchema } from "./schema.ts";
import { LIMIT_ENV_NAMES } from "./limits.ts";
import { CONTENT_ENV_NAMES } from "./content.ts";
import { OUTBOUND_ENV_NAMES } from "./outbound.ts";
import { SANDBOX_ENV_NAMES } from "./sandbox.ts";
import { didYouMean } from "./suggest.ts";
import { OUTBOUND_TLS_ENV_NAMES } from "./outbound_tls.ts";

/** Env variable → config field. These names are the documented contract. */
export const ENV_NAMES: Record<string, keyof Config> = {
  POSTERN_DATA_DIR: "dataDir",
  POSTERN_KV: "kv",
  POSTERN_ROLES: "roles",
  POSTERN_LEASE_TTL: "leaseTtl",
  POSTERN_STORE_RETRY: "storeRetry",
  POSTERN_COMMIT_LINGER: "commitLinger",
  POSTERN_LISTEN: "listen",
  POSTERN_SMTP_PORT: "smtpPort",
  POSTERN_SMTPS_PORT: "smtpsPort",
  POSTERN_HTTP_PORT: "httpPort",
  POSTERN_HOSTNAME: "hostname",
  POSTERN_TLS_CERT: "tlsCert",
  POSTERN_TLS_KEY: "tlsKey",
  POSTERN_ADMIN_TOKEN: "adminToken",
  POSTERN_SECRET_KEY: "secretKey",
  POSTERN_DNS: "dns",
  POSTERN_MX_PORT: "mxPort",
  POSTERN_ROUTES: "routes",
  POSTERN_TRUSTED_NETWORKS: "trustedNetworks",
  POSTERN_TRUSTED_ACCOUNT: "trustedAccount",
  POSTERN_SPF_INCLUDE: "spfInclude",
  POSTERN_RETRY_SCHEDULE: "retrySchedule",
  POSTERN_MAX_AGE: "maxAge",
  POSTERN_MAX_MESSAGE_SIZE: "maxMessageSize",
  POSTERN_SHUTDOWN_GRACE: "shutdownGrace",
  POSTERN_CONNECT_TIMEOUT: "connectTimeout",
  POSTERN_COMMAND_TIMEOUT: "commandTimeout",
  POSTERN_CONNECTION_LIMIT: "connectionLimit",
  POSTERN_MAX_DELIVERIES_PER_CONNECTION: "maxDeliveriesPerConnection",
  POSTERN_POLL_INTERVAL: "pollInterval",
  POSTERN_SUPPRESS_AFTER_EXPIRIES: "suppressAfterExpiries",
  POSTERN_LOG_LEVEL: "logLevel",
  POSTERN_WEBHOOK_ALLOW: "webhookAllow",
  POSTERN_WEBHOOK_RETRY_SCHEDULE: "webhookRetrySchedule",
  POSTERN_WEBHOOK_TIMEOUT: "webhookTimeout",
  POSTERN_EVENT_SETTLE: "eventSettle",
  POSTERN_RETENTION: "retention",
  POSTERN_BOUNCE_DOMAIN: "bounceDomain",
  POSTERN_INBOUND_PORT: "inboundPort",
  ...LIMIT_ENV_NAMES,
  ...CONTENT_ENV_NAMES,
  ...OUTBOUND_ENV_NAMES,
  ...SANDBOX_ENV_NAMES,
  ...OUTBOUND_TLS_ENV_NAMES,
};

/** The environment variable of a config field: `smtpsPort` → `POSTERN_SMTPS_PORT`. */
export function envNameOf(field: string): string {
  return `POSTERN_${field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** The config file's top-level keys: every field of the schema. */
export const CONFIG_FIELDS: readonly string[] = Object.keys(ConfigSchema.shape);

/**
 * Every environment variable start-up reads: the documented table, and for a field added to the
 * schema without a row there, its derived name, so a new setting is never refused as unknown.
 */
export function envSettings(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of CONFIG_FIELDS) out[envNameOf(field)] = field;
  for (const [name, field] of Object.entries(ENV_NAMES)) {
    delete out[envNameOf(field)];
    out[name] = field;
  }
  return out;
}

/**
 * Known although not config fields: POSTERN_CONFIG is read before the config itself; the others
 * belong to the test suite (README "Development"), and a shell that exports them for a test run
 * must still start the relay.
 */
const META_ENV = ["POSTERN_CONFIG", "POSTERN_DASHBOARD_SHOTS", "POSTERN_CHAOS_SEED"];

/** A setting that stops start-up; its message is one line naming the setting and the reason. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * A structured setting (shaping, pools, routes with AUTH) may come from the environment too,
 * as the JSON the config file would hold under its field name.
 */
function jsonOrText(name: string, value: string): unknown {
  if (!value.trimStart().startsWith("{")) return value;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new ConfigError(`${name}: not valid JSON: ${(e as Error).message}`);
  }
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const settings = envSettings();
  const knownEnv = [...Object.keys(settings), ...META_ENV];
  for (const name of Object.keys(env).sort()) {
    if (name.startsWith("POSTERN_") && !knownEnv.includes(name)) {
      throw new ConfigError(`${name}: unknown setting${didYouMean(name, knownEnv)}`);
    }
  }
  let input: Record<string, unknown> = {};
  const file = env.POSTERN_CONFIG;
  if (file) {
    try {
      input = JSON.parse(Deno.readTextFileSync(file));
    } catch (e) {
      throw new ConfigError(`POSTERN_CONFIG: cannot read ${file}: ${(e as Error).message}`);
    }
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw new ConfigError(`POSTERN_CONFIG: ${file} must hold a JSON object`);
    }
    for (const key of Object.keys(input).sort()) {
      if (!CONFIG_FIELDS.includes(key)) {
        throw new ConfigError(
          `${key} in ${file}: unknown setting${didYouMean(key, CONFIG_FIELDS)}`,
        );
      }
    }
  }
  const fromEnv = new Map<string, string>();
  for (const [name, field] of Object.entries(settings)) {
    const value = env[name];
    if (value !== undefined && value !== "") {
      input[field] = jsonOrText(name, value);
      fromEnv.set(field, name);
    }
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    const path = issue.path.map(String).join(".");
    const setting = fromEnv.get(field) ??
      (field ? `${path} in ${file ?? "config"}` : (file ?? "config"));
    throw new ConfigError(`${setting}: ${issue.message}`);
  }
  return parsed.data;
}
