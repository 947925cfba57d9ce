/**
 * The HTTP role built from the configuration: the whole API for a node that runs it (main.ts and
 * edge.ts alike), or only /healthz and /metrics for a node that does not.
 */
import { Hono } from "hono";
import type { Config } from "../core/config/schema.ts";
import type { NodeServices } from "../core/node_services.ts";
import type { QueueControl } from "../core/queue_control.ts";
import type { TlsReportControl } from "../core/tls_report_control.ts";
import { DEFAULT_ACCOUNT } from "../core/store/accounts.ts";
import { denoTxtLookup } from "../core/mail/txt.ts";
import { dnsResolver } from "../core/mail/mx.ts";
import { networkMatcher } from "../core/net/cidr.ts";
import { createApp } from "./app.ts";
import { metricsApi } from "./metrics.ts";
import { errors, renderError } from "./errors.ts";

export function httpRoleApp(
  config: Config,
  services: NodeServices,
  options: {
    hostname: string;
    queue?: () => QueueControl | null;
    tlsReports?: () => TlsReportControl | null;
  },
) {
  return createApp({
    kv: services.kv,
    adminTokenHash: services.admin.hash,
    defaultAccount: DEFAULT_ACCOUNT,
    spfInclude: config.spfInclude ?? options.hostname,
    txtLookup: denoTxtLookup(config.dns),
    queue: options.queue ?? (() => null),
    tlsReports: options.tlsReports ?? (() => null),
    suppressions: services.suppressions,
    intake: services.intake,
    limits: services.limits,
    maxRecipients: config.maxRecipients,
    memory: services.memory,
    resolver: dnsResolver(config.dns),
    webhookAllowed: networkMatcher(config.webhookAllow),
    secretBox: services.secretBox,
    trusted: networkMatcher(config.trustedNetworks),
    eventSettleMs: config.eventSettle,
    smtp: { host: options.hostname, submissionPort: config.smtpPort, smtpsPort: config.smtpsPort },
    sandbox: services.sandbox,
    holds: services.holds,
    httpLimits: {
      maxBody: config.httpMaxBody,
      maxJsonDepth: config.httpMaxJsonDepth,
      rate: config.httpRateLimit,
      authFailureLimit: config.authFailureLimit,
      authLockoutMs: config.authLockout,
    },
  });
}

/** A node without the HTTP role answers /healthz and /metrics only. */
export function healthOnlyApp(config: Config, services: NodeServices) {
  const app = new Hono();
  app.onError(renderError);
  app.notFound(() => {
    throw errors.notFound("route");
  });
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.route(
    "/metrics",
    metricsApi({
      kv: services.kv,
      adminTokenHash: services.admin.hash,
      trusted: networkMatcher(config.trustedNetworks),
    }),
  );
  return app;
}
