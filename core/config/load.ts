/**
 * The only reader of environment variables and config files. Env overrides the JSON file named by
 * POSTERN_CONFIG; the merged input is validated once by the zod schema.
 */
import { type Config, ConfigSchema } from "./schema.ts";
import { LIMIT_ENV_NAMES } from "./limits.ts";
import { CONTENT_ENV_NAMES } from "./content.ts";
import { OUTBOUND_ENV_NAMES } from "./outbound.ts";
import { SANDBOX_ENV_NAMES } from "./sandbox.ts";
import { OUTBOUND_TLS_ENV_NAMES } from "./outbound_tls.ts";

/** Env variable → config field. These names are the documented contract. */
export const ENV_NAMES: Record<string, keyof Config> = {
  POSTERN_DATA_DIR: "dataDir",
  POSTERN_KV: "kv",
  POSTERN_ROLES: "roles",
  POSTERN_LEASE_TTL: "leaseTtl",
  POSTERN_STORE_RETRY: "storeRetry",
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

/** A setting that stops start-up; its message is one line naming the setting and the reason. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  let input: Record<string, unknown> = {};
  const file = env.POSTERN_CONFIG;
  if (file) {
    try {
      input = JSON.parse(Deno.readTextFileSync(file));
    } catch (e) {
      throw new ConfigError(`POSTERN_CONFIG: cannot read ${file}: ${(e as Error).message}`);
    }
  }
  const fromEnv = new Map<string, string>();
  for (const [name, field] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== "") {
      input[field] = value;
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
