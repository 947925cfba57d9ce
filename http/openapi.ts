/**
 * GET /openapi.json and GET /docs. The document is generated from the same zod schemas that
 * validate the requests (zod's toJSONSchema, input side), so it cannot drift from what the
 * server accepts; /docs renders it as one readable page with no scripts or outside assets.
 */
import { Hono } from "hono";
import { z } from "zod";
import { SendBatchSchema, SendMessageSchema } from "./send.ts";
import { EventsQuery } from "./events.ts";
import { CreateWebhook, ReplayQuery, UpdateWebhook } from "./webhooks.ts";
import { SearchQuery } from "./search.ts";
import { StatsQuery } from "./stats.ts";
import { SendTlsReports, TlsReportsQuery } from "./tls_reports.ts";
import { EVENT_TYPES } from "../core/events/vocabulary.ts";
import { CreateAccount, UpdateAccount } from "./accounts.ts";
import { CreateCredential, UpdateCredential } from "./credentials.ts";
import { CreateDomain } from "./domains.ts";
import { AddSuppression } from "./suppressions.ts";

interface Operation {
  method: "get" | "post" | "patch" | "delete";
  path: string;
  summary: string;
  description?: string;
  body?: z.ZodType;
  bodyType?: string;
  query?: z.ZodObject;
  /** Also takes a whole message as `message/rfc822`, its envelope in the query. */
  rawUpload?: boolean;
  /**
   * Status → description. A 2xx description in braces ("{data, next_cursor}") names the fields
   * of the JSON body; the errors every operation can answer (401, 403, 404, 400, 413, 429) are
   * added by openApiDocument.
   */
  responses: Record<string, string>;
  /** Who may call it. */
  auth: "admin" | "any key" | "admin or trusted network";
}

const ID = "{id}";

const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/v1/messages",
    summary: "Send a message",
    description:
      "JSON built into MIME, or a whole message with Content-Type: message/rfc822 (envelope from " +
      "?from= and ?to=, else its From/To/Cc headers; ?tag= adds tags). Same queue, scopes and " +
      "events as SMTP. An Idempotency-Key header makes a repeat within 24 h return the first id " +
      "and queue nothing (409 when the repeat differs).",
    body: SendMessageSchema,
    rawUpload: true,
    responses: {
      "202": "{id}: committed to the queue",
      "400": "invalid field (header injection is refused, never rewritten)",
      "403": "outside the credential's scopes",
      "409": "Idempotency-Key reused for a different request",
      "413": "larger than the size limit (also the sandbox's smtp-552@)",
      "422": "refused by the content filter (rspamd)",
      "429": "rate_limit or daily_quota reached",
      "503": "the queue or the content filter (on_error tempfail) is unavailable (also the " +
        "sandbox's smtp-421@ and smtp-451@, with Retry-After)",
    },
    auth: "any key",
  },
  {
    method: "post",
    path: "/v1/messages/batch",
    summary: "Send up to 500 messages",
    description:
      "A JSON array of messages; answers an array with one {index, status, id | error} " +
      "per message. With Idempotency-Key, message n uses the key `<key>:<n>`.",
    body: SendBatchSchema,
    responses: { "200": "one result per message" },
    auth: "any key",
  },
  {
    method: "get",
    path: "/v1/messages",
    summary: "Search the delivery log",
    description: "Newest first. Follow next_cursor until it is null.",
    query: SearchQuery,
    responses: { "200": "{data, next_cursor}" },
    auth: "any key",
  },
  {
    method: "get",
    path: `/v1/messages/${ID}`,
    summary: "A message: each recipient's status and the events so far",
    responses: { "200": "the message", "404": "no such message in this account" },
    auth: "any key",
  },
  {
    method: "get",
    path: "/v1/events",
    summary: "The account's event log, oldest first",
    description: `Event types: ${EVENT_TYPES.join(", ")}. Keep next_cursor and ask again to ` +
      "catch up after an outage with no gaps; the log is served up to a few seconds before now.",
    query: EventsQuery,
    responses: { "200": "{data, next_cursor, has_more}" },
    auth: "any key",
  },
  {
    method: "post",
    path: "/v1/webhooks",
    summary: "Register a webhook endpoint",
    description: "Answers the signing secret (whsec_…) once. The URL must reach a public address.",
    body: CreateWebhook,
    responses: { "201": "the endpoint with its secret", "400": "invalid or private URL" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/webhooks",
    summary: "List webhook endpoints (no secrets)",
    responses: { "200": "{data}" },
    auth: "admin",
  },
  {
    method: "get",
    path: `/v1/webhooks/${ID}`,
    summary: "A webhook endpoint and where its delivery stands",
    responses: { "200": "the endpoint" },
    auth: "admin",
  },
  {
    method: "patch",
    path: `/v1/webhooks/${ID}`,
    summary: "Change an endpoint's URL, events or description",
    body: UpdateWebhook,
    responses: { "200": "the endpoint" },
    auth: "admin",
  },
  {
    method: "delete",
    path: `/v1/webhooks/${ID}`,
    summary: "Remove an endpoint",
    responses: { "200": "{id, deleted}" },
    auth: "admin",
  },
  {
    method: "post",
    path: `/v1/webhooks/${ID}/rotate`,
    summary: "Issue a new signing secret",
    description: "The old secret keeps signing for 24 h; both signatures are sent meanwhile.",
    responses: { "200": "the endpoint with its new secret" },
    auth: "admin",
  },
  {
    method: "post",
    path: `/v1/webhooks/${ID}/replay`,
    summary: "Send events again from a time or event id on",
    query: ReplayQuery,
    responses: { "200": "the endpoint with its moved cursor" },
    auth: "admin",
  },
  {
    method: "get",
    path: `/v1/webhooks/${ID}/failures`,
    summary: "Events given up after their retries",
    responses: { "200": "{data}" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/stats",
    summary: "Event counts per recipient by hour, domain or tag",
    query: StatsQuery,
    responses: { "200": "{by, since, until, data}" },
    auth: "any key",
  },
  {
    method: "post",
    path: "/v1/accounts",
    summary: "Create an account (a tenant)",
    body: CreateAccount,
    responses: { "201": "the account", "409": "an account with this name exists" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/accounts",
    summary: "List accounts",
    responses: { "200": "{data}" },
    auth: "admin",
  },
  {
    method: "get",
    path: `/v1/accounts/${ID}`,
    summary: "An account and its settings",
    responses: { "200": "the account", "404": "no such account" },
    auth: "admin",
  },
  {
    method: "patch",
    path: `/v1/accounts/${ID}`,
    summary: "Change an account's settings (require_verified_sender, pools, test_mode, " +
      "content_policy)",
    description: "content_policy (what rspamd's score does to its mail): reject_score: refused " +
      "(SMTP 550 5.7.1, HTTP 422); hold_score: accepted but held; add_headers: X-Spam-* " +
      "headers on mail that passes; on_error: accept or tempfail (451 4.7.1) while rspamd is " +
      "down. Fields not given keep their value.",
    body: UpdateAccount,
    responses: { "200": "the account", "404": "no such account" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/holds",
    summary: "Mail the content filter held",
    description: "A credential key sees its account's holds; the admin token sees every " +
      "account's, or one account's with X-Postern-Account.",
    responses: { "200": "{data}" },
    auth: "any key",
  },
  {
    method: "get",
    path: `/v1/holds/${ID}`,
    summary: "One held message: score, symbols, expiry",
    responses: { "200": "the hold", "404": "no such hold" },
    auth: "any key",
  },
  {
    method: "post",
    path: `/v1/holds/${ID}/release`,
    summary: "Release a held message for delivery (event released)",
    responses: { "200": "{id, outcome}", "404": "no such hold", "409": "settled meanwhile" },
    auth: "admin",
  },
  {
    method: "delete",
    path: `/v1/holds/${ID}`,
    summary: "Drop a held message (event dropped); nothing is sent",
    responses: { "200": "{id, outcome}", "404": "no such hold", "409": "settled meanwhile" },
    auth: "admin",
  },
  {
    method: "post",
    path: `/v1/holds/${ID}/recheck`,
    summary: "Scan a held message again with rspamd's current rules and the current policy",
    description: "Below hold_score it is released, at reject_score dropped, in between it " +
      "stays held with the new score and symbols.",
    responses: {
      "200": "{id, outcome: released | dropped | held, score, symbols}",
      "503": "rspamd cannot scan now (or filtering is off)",
    },
    auth: "admin",
  },
  {
    method: "post",
    path: "/v1/credentials",
    summary: "Create a credential: SMTP login and API key (shown once)",
    body: CreateCredential,
    responses: { "201": "the credential with its password" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/credentials",
    summary: "List the account's credentials (no secrets)",
    responses: { "200": "{data}" },
    auth: "any key",
  },
  {
    method: "get",
    path: `/v1/credentials/${ID}`,
    summary: "A credential (no secrets)",
    responses: { "200": "the credential" },
    auth: "any key",
  },
  {
    method: "patch",
    path: `/v1/credentials/${ID}`,
    summary: "Change a credential's name or scopes, or lift an abuse-brake suspension",
    body: UpdateCredential,
    responses: { "200": "the credential", "409": "the credential is revoked" },
    auth: "admin",
  },
  {
    method: "post",
    path: `/v1/credentials/${ID}/rotate`,
    summary: "Issue a second secret (shown once); the first keeps working",
    responses: {
      "201": "the credential with the new password",
      "409": "the credential is revoked, or already has two secrets",
    },
    auth: "admin",
  },
  {
    method: "delete",
    path: `/v1/credentials/${ID}/secrets/{secretId}`,
    summary: "Revoke one secret of a credential",
    responses: { "200": "the credential", "409": "it is the credential's only secret" },
    auth: "admin",
  },
  {
    method: "delete",
    path: `/v1/credentials/${ID}`,
    summary: "Revoke a credential",
    responses: { "200": "the credential" },
    auth: "admin",
  },
  {
    method: "post",
    path: "/v1/domains",
    summary: "Add a sending domain with DKIM keys; answers the DNS records to publish",
    body: CreateDomain,
    responses: { "201": "the domain", "409": "the domain is already added" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/domains",
    summary: "List sending domains",
    responses: { "200": "{data}" },
    auth: "any key",
  },
  {
    method: "get",
    path: `/v1/domains/${ID}`,
    summary: "A sending domain and its records",
    responses: { "200": "the domain" },
    auth: "any key",
  },
  {
    method: "post",
    path: `/v1/domains/${ID}/verify`,
    summary: "Check the domain's DNS records",
    responses: { "200": "the domain with each record's state" },
    auth: "any key",
  },
  {
    method: "post",
    path: `/v1/domains/${ID}/rotate-dkim`,
    summary: "Add DKIM keys under a new selector",
    responses: {
      "201": "the domain with its pending keys",
      "409": "a rotation already waits for its DNS records",
    },
    auth: "admin",
  },
  {
    method: "delete",
    path: `/v1/domains/${ID}`,
    summary: "Remove a sending domain",
    responses: { "200": "the domain" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/suppressions",
    summary: "The account's suppression list",
    responses: { "200": "{data}" },
    auth: "any key",
  },
  {
    method: "post",
    path: "/v1/suppressions",
    summary: "Suppress an address",
    body: AddSuppression,
    responses: { "201": "the suppression" },
    auth: "any key",
  },
  {
    method: "get",
    path: "/v1/suppressions/{address}",
    summary: "Whether an address is suppressed, and why",
    responses: { "200": "the suppression", "404": "not suppressed" },
    auth: "any key",
  },
  {
    method: "delete",
    path: "/v1/suppressions/{address}",
    summary: "Lift a suppression",
    responses: { "200": "the removed suppression" },
    auth: "any key",
  },
  {
    method: "get",
    path: "/v1/tls-reports",
    summary: "Outbound TLS sessions per recipient domain and UTC day (RFC 8460 counters)",
    description: "For each domain and day: the policy sessions were held to (sts, tlsa or " +
      "no-policy-found), successful and failed sessions, and failures by RFC 8460 result type " +
      "and MX host. These are the numbers of the daily aggregate report.",
    query: TlsReportsQuery,
    responses: { "200": "{data}" },
    auth: "admin",
  },
  {
    method: "post",
    path: "/v1/tls-reports/send",
    summary: "Send a day's aggregate TLS reports now",
    description: "Reports go to each domain's _smtp._tls rua (mailto: through the queue, " +
      "https: POST), once per domain and day; the hourly sender does the same for finished days.",
    body: SendTlsReports,
    responses: { "200": "{day, data: [{domain, to, ok, error?}]}" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/queue",
    summary: "Queued work per destination site and its shaping state",
    responses: { "200": "{data}" },
    auth: "admin",
  },
  ...(["retry", "suspend", "resume"] as const).map((action): Operation => ({
    method: "post",
    path: `/v1/queue/{site}/${action}`,
    summary: `${action[0]!.toUpperCase()}${action.slice(1)} a site's queue`,
    responses: { "200": "the site" },
    auth: "admin",
  })),
  {
    method: "get",
    path: "/v1/sandbox",
    summary: "The sandbox: simulator addresses and what each does",
    description:
      "Addresses at the simulator domain (POSTERN_SIMULATOR_DOMAIN) work from any credential: " +
      "delivery behaviours are played by a simulated MX the relay really delivers to; " +
      "submission faults (smtp-421@, smtp-451@, smtp-slow@, smtp-552@) by the relay's own " +
      'SMTP and HTTP doors. Test mode (credential or account test_mode, or "test": true on ' +
      "a send) delivers every recipient to the simulated MX.",
    responses: { "200": "{domain, test_mode, plus_suffix, addresses}" },
    auth: "any key",
  },
  ...([
    [
      "get",
      "",
      "The sandbox's own suppression list: simulator addresses that bounced or complained",
    ],
    ["post", "", "Put a simulator address on the sandbox's list"],
    ["get", "/{address}", "Whether a simulator address is on the sandbox's list"],
    [
      "delete",
      "/{address}",
      "Take a simulator address off the sandbox's list, to send to it again",
    ],
  ] as const).map(([method, tail, summary]): Operation => ({
    method,
    path: `/v1/sandbox/suppressions${tail}`,
    summary,
    ...(method === "post" ? { body: AddSuppression } : {}),
    responses: { "200": "as for /v1/suppressions" },
    auth: "any key",
  })),
  {
    method: "delete",
    path: "/v1/queue/{site}",
    summary: "Drop a site's queued mail",
    responses: { "200": "what was dropped" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/v1/nodes",
    summary: "Live nodes sharing the store",
    description:
      "Every node whose heartbeat is under 15 s old: its id, hostname, roles, start time, last " +
      "heartbeat and the destination sites whose leases it holds (with each lease's expiry). " +
      "Edge isolates of the HTTP role are not listed.",
    responses: { "200": "{data}" },
    auth: "admin",
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics",
    responses: { "200": "text/plain exposition format" },
    auth: "admin or trusted network",
  },
];

function schemaOf(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  delete json.$schema;
  return json;
}

/** Every error response: `{error: {code, message, details?}}` (http/errors.ts). */
const ERROR_SCHEMA = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", description: "e.g. invalid_request, not_found, conflict" },
        message: { type: "string" },
        details: { description: "the fields at fault, or retry_after_s" },
      },
    },
  },
};

const RAW_MESSAGE = {
  schema: { type: "string", contentMediaType: "message/rfc822" },
  description: "A whole message (headers and body) as it should be sent; bare LF is repaired " +
    "to CRLF. A Bcc header is refused: put those recipients in ?to=.",
};

/** The raw upload's envelope and options, in the query (message/rfc822 only). */
const RAW_QUERY = ([
  ["from", "envelope sender (message/rfc822 only); default the From header", false],
  ["to", "envelope recipient, repeatable (message/rfc822 only); default To and Cc", true],
  ["tag", "a tag, repeatable (message/rfc822 only)", true],
  ["test", "true: test mode for this message (message/rfc822 only)", false],
] as const).map(([name, description, repeat]) => ({
  name,
  in: "query",
  required: false,
  description,
  schema: repeat ? { type: "array", items: { type: "string" } } : { type: "string" },
  ...(repeat ? { style: "form", explode: true } : {}),
}));

/** The errors any operation may answer, by what it takes and who may call it. */
function commonErrors(op: Operation): Record<string, string> {
  const errors: Record<string, string> = {
    "401": "missing or invalid bearer token",
    "429": "too many requests for this key (POSTERN_HTTP_RATE_LIMIT), or too many failed " +
      "keys from this address",
  };
  if (op.auth !== "any key") errors["403"] = "a credential key where the admin token is needed";
  if (/\{\w+\}/.test(op.path)) errors["404"] = "no such resource in this account";
  if (op.body || op.query) errors["400"] = "invalid request: details lists each field at fault";
  if (op.body) errors["413"] = "request body over the size limit";
  return errors;
}

/** A 2xx body: the fields a "{a, b}" description names, or an object described in words. */
function successSchema(description: string): Record<string, unknown> {
  const fields = /^\{([\w, ]+)\}/.exec(description)?.[1];
  if (!fields) return { type: "object", description };
  const properties: Record<string, unknown> = {};
  for (const name of fields.split(/,\s*/)) {
    properties[name] = name === "data"
      ? { type: "array", items: { type: "object" } }
      : name.endsWith("cursor")
      ? { type: ["string", "null"] }
      : {};
  }
  return { type: "object", required: Object.keys(properties), properties, description };
}

function responsesOf(op: Operation): Record<string, unknown> {
  const all = { ...commonErrors(op), ...op.responses };
  return Object.fromEntries(
    Object.entries(all).sort(([a], [b]) => a.localeCompare(b)).map(([code, description]) => {
      if (!code.startsWith("2")) {
        const error = { schema: { $ref: "#/components/schemas/Error" } };
        return [code, { description, content: { "application/json": error } }];
      }
      const content = op.path === "/metrics"
        ? { "text/plain": { schema: { type: "string" } } }
        : op.path === "/v1/messages/batch"
        ? {
          "application/json": {
            schema: { type: "array", items: successSchema("{index, status, id, error}") },
          },
        }
        : { "application/json": { schema: successSchema(description) } };
      return [code, { description, content }];
    }),
  );
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const parameters: unknown[] = op.rawUpload ? [...RAW_QUERY] : [];
    for (const [, name] of op.path.matchAll(/\{(\w+)\}/g)) {
      parameters.push({ name, in: "path", required: true, schema: { type: "string" } });
    }
    if (op.query) {
      const json = schemaOf(op.query) as {
        properties?: Record<string, Record<string, unknown>>;
        required?: string[];
      };
      for (const [name, schema] of Object.entries(json.properties ?? {})) {
        parameters.push({
          name,
          in: "query",
          required: json.required?.includes(name) ?? false,
          ...(schema.description ? { description: schema.description } : {}),
          schema,
        });
      }
    }
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(op.body
        ? {
          requestBody: {
            required: true,
            content: {
              [op.bodyType ?? "application/json"]: { schema: schemaOf(op.body) },
              ...(op.rawUpload ? { "message/rfc822": RAW_MESSAGE } : {}),
            },
          },
        }
        : {}),
      responses: responsesOf(op),
      ...(op.path === "/metrics" ? {} : { security: [{ bearer: [] }] }),
      "x-postern-auth": op.auth,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Postern HTTP API",
      version: "1",
      description: "Errors are {error: {code, message, details?}}. Authenticate with " +
        "`Authorization: Bearer <admin token or credential key>`.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { Error: ERROR_SCHEMA },
    },
    paths,
  };
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

export function docsPage(): string {
  const sections = OPERATIONS.map((op) => {
    const query = op.query
      ? Object.entries(
        (schemaOf(op.query) as { properties?: Record<string, { description?: string }> })
          .properties ?? {},
      ).map(([name, s]) =>
        `<tr><td><code>${escape(name)}</code></td><td>${escape(s.description ?? "")}</td></tr>`
      ).join("")
      : "";
    return `<section>
<h2><span class="m">${op.method.toUpperCase()}</span> <code>${escape(op.path)}</code></h2>
<p><b>${escape(op.summary)}</b> — ${escape(op.auth)}</p>
${op.description ? `<p>${escape(op.description)}</p>` : ""}
${query ? `<table><tr><th>query</th><th></th></tr>${query}</table>` : ""}
${
      op.body
        ? `<details><summary>request body schema</summary><pre>${
          escape(JSON.stringify(schemaOf(op.body), null, 2))
        }</pre></details>`
        : ""
    }
<ul>${
      Object.entries(op.responses).map(([code, d]) => `<li><code>${code}</code> ${escape(d)}</li>`)
        .join("")
    }</ul>
</section>`;
  }).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Postern HTTP API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}
h2{font-size:1.05rem;margin-top:2rem}.m{color:#06c}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}</style>
</head><body>
<h1>Postern HTTP API</h1>
<p>Authenticate with <code>Authorization: Bearer &lt;admin token or credential key&gt;</code>.
Errors are <code>{"error": {"code", "message", "details"}}</code>. The machine-readable form is
<a href="/openapi.json">/openapi.json</a>.</p>
${sections}
</body></html>`;
}

export function docsApi() {
  const app = new Hono();
  const doc = openApiDocument();
  const page = docsPage();
  app.get("/openapi.json", (c) => c.json(doc));
  app.get("/docs", (c) => c.html(page));
  return app;
}
