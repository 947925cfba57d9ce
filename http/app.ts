/** The Hono app: one sub-app per resource, one error renderer. */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type AppEnv, bearerAuth } from "./auth.ts";
import { credentialsApi } from "./credentials.ts";
import { messagesApi } from "./messages.ts";
import { accountsApi } from "./accounts.ts";
import { domainsApi } from "./domains.ts";
import type { TxtLookup } from "../core/mail/dns_records.ts";
import { errorRenderer, errors } from "./errors.ts";
import { sendApi } from "./send.ts";
import { searchApi } from "./search.ts";
import { eventsApi } from "./events.ts";
import { webhooksApi } from "./webhooks.ts";
import { statsApi } from "./stats.ts";
import { metricsApi } from "./metrics.ts";
import { docsApi } from "./openapi.ts";
import type { IntakeDeps } from "../core/intake.ts";
import type { SendLimits } from "../core/send_limits.ts";
import type { Resolver } from "../core/mail/mx.ts";
import { queueApi } from "./queue.ts";
import { tlsReportsApi } from "./tls_reports.ts";
import type { TlsReportControl } from "../core/tls_report_control.ts";
import { nodesApi } from "./nodes.ts";
import { suppressionsApi } from "./suppressions.ts";
import { sandboxApi } from "./sandbox.ts";
import { sandboxList } from "../core/policy/sandbox.ts";
import type { SandboxHttp } from "./sandbox_faults.ts";
import {
  authFailureLock,
  DEFAULT_HTTP_LIMITS,
  type HttpLimits,
  jsonDepthLimit,
  memoryBudgetLimit,
  rateLimitPerKey,
} from "./limits.ts";
import type { MemoryBudget } from "../core/policy/memory_budget.ts";
import type { SecretBox } from "../core/auth/secret_box.ts";
import type { QueueControl } from "../core/queue_control.ts";
import type { SuppressionCache } from "../core/store/suppressions.ts";
import { HoldQueue } from "../core/content/hold_queue.ts";
import { holdsApi } from "./holds.ts";
import { dashboardApp } from "./dashboard/app.tsx";

export interface HttpDeps {
  kv: Deno.Kv;
  adminTokenHash: string;
  defaultAccount: string;
  /** The name sending domains' SPF records include. */
  spfInclude: string;
  /** TXT lookups for domain verification (through POSTERN_DNS). */
  txtLookup: TxtLookup;
  /** Live queue state from the worker; null on a node without one (the API answers 503). */
  queue?: () => QueueControl | null;
  /** The TLS report sender, for POST /v1/tls-reports/send; null: none on this node. */
  tlsReports?: () => TlsReportControl | null;
  /** This node's in-memory suppression lists, updated at once by the suppressions API. */
  suppressions?: SuppressionCache;
  /** The one door into the queue, for the send API (the same as SMTP's). */
  intake: IntakeDeps;
  /** Credentials' rate_limit and daily_quota, shared with the SMTP side. */
  limits: SendLimits;
  /** Recipients one message may have (POSTERN_MAX_RECIPIENTS), as over SMTP. */
  maxRecipients: number;
  /** Resolves webhook hosts (through POSTERN_DNS). */
  resolver: Resolver;
  /** Networks webhooks may reach although not public (POSTERN_WEBHOOK_ALLOW). */
  webhookAllowed: (address: string) => boolean;
  /** Seals webhook secrets and DKIM private keys before they are stored. */
  secretBox: SecretBox;
  /** Clients that may scrape /metrics without a token (POSTERN_TRUSTED_NETWORKS). */
  trusted: (address: string) => boolean;
  /** How far short of now the event log is served (POSTERN_EVENT_SETTLE). */
  eventSettleMs: number;
  /** The simulator domain and its clocks: GET /v1/sandbox and the send API's faults. */
  sandbox?: SandboxHttp;
  /** Body size, JSON depth and request rate per key (POSTERN_HTTP_*). @default DEFAULT_HTTP_LIMITS */
  httpLimits?: HttpLimits;
  /** Held mail (content filtering); by default one that cannot recheck (no rspamd). */
  holds?: HoldQueue;
  /** Message bytes held in memory, shared with the SMTP side (POSTERN_MEMORY_BUDGET). */
  memory?: MemoryBudget;
  /** Where SMTP clients connect, for the settings the dashboard shows with a new credential. */
  smtp?: { host: string; submissionPort: number; smtpsPort: number };
}

export function createApp(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  app.onError(errorRenderer(deps.intake.log));
  app.notFound(() => {
    throw errors.notFound("route");
  });
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.route("/metrics", metricsApi(deps));
  app.route("/", docsApi());

  const v1 = new Hono<AppEnv>();
  const httpLimits = deps.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const MAX_JSON_BODY = httpLimits.maxBody;
  // Rate first: a caller over its rate costs neither a body read nor a key check.
  v1.use("*", rateLimitPerKey(httpLimits.rate));
  const limitTo = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw errors.tooLarge(maxSize);
      },
    });
  const jsonLimit = limitTo(MAX_JSON_BODY);
  // Sends carry attachments as base64 (4/3 of the bytes) up to the message size limit.
  const sendLimit = limitTo(Math.ceil(deps.intake.maxMessageSize * 4 / 3) + MAX_JSON_BODY);
  v1.use("*", (c, next) => {
    const isSend = c.req.method === "POST" && /^\/v1\/messages(\/batch)?\/?$/.test(c.req.path);
    return isSend ? sendLimit(c, next) : jsonLimit(c, next);
  });
  // One lock for the API and the dashboard's sign-in: a client locked out of one is out of both.
  const authLock = authFailureLock(httpLimits.authFailureLimit, httpLimits.authLockoutMs, deps.kv);
  v1.use("*", authLock);
  v1.use("*", bearerAuth(deps));
  if (deps.memory) v1.use("*", memoryBudgetLimit(deps.memory));
  v1.use("*", jsonDepthLimit(httpLimits.maxJsonDepth));
  const resources = resourceRoutes(deps);
  v1.route("/", resources);
  app.route("/v1", v1);
  app.route("/", dashboardApp({ ...deps, authLock, resources }));
  return app;
}

/**
 * Every /v1 resource, behind whatever authenticated the principal: the API's bearer key, or a
 * dashboard session (http/dashboard calls these same routes in-process).
 */
export function resourceRoutes(deps: HttpDeps): Hono<AppEnv> {
  const v1 = new Hono<AppEnv>();
  v1.route("/accounts", accountsApi(deps.kv));
  v1.route("/credentials", credentialsApi(deps.kv));
  v1.route("/domains", domainsApi(deps));
  v1.route("/messages", sendApi(deps));
  v1.route("/messages", searchApi(deps.kv));
  v1.route("/messages", messagesApi(deps.kv));
  v1.route("/events", eventsApi({ kv: deps.kv, settleMs: deps.eventSettleMs }));
  v1.route(
    "/webhooks",
    webhooksApi({
      kv: deps.kv,
      resolver: deps.resolver,
      allowed: deps.webhookAllowed,
      secretBox: deps.secretBox,
    }),
  );
  v1.route("/stats", statsApi({ kv: deps.kv }));
  v1.route("/suppressions", suppressionsApi(deps.kv, deps.suppressions));
  v1.route("/queue", queueApi(deps.queue ?? (() => null)));
  v1.route("/tls-reports", tlsReportsApi({ kv: deps.kv, sender: deps.tlsReports ?? (() => null) }));
  v1.route("/nodes", nodesApi({ kv: deps.kv }));
  v1.route("/sandbox", sandboxApi(deps.sandbox));
  v1.route("/sandbox/suppressions", suppressionsApi(deps.kv, deps.suppressions, sandboxList));
  const holds = deps.holds ?? new HoldQueue({
    kv: deps.kv,
    committer: deps.intake.committer,
    signal: deps.intake.signal,
    log: deps.intake.log,
    scanner: null,
  });
  v1.route("/holds", holdsApi({ kv: deps.kv, holds }));
  return v1;
}
