/**
 * /v1/webhooks: endpoints that receive the account's events, signed by the Standard Webhooks
 * scheme. The signing secret is shown when created and when rotated, never again. A URL must
 * reach a public address (checked here and again at each send) unless an operator allowed the
 * network with POSTERN_WEBHOOK_ALLOW.
 */
import { Hono } from "hono";
import { z } from "zod";
import { EVENT_TYPES, EventTypeSchema } from "../core/events/vocabulary.ts";
import type { SecretBox } from "../core/auth/secret_box.ts";
import { checkHttpTarget } from "../core/net/public_address.ts";
import type { Resolver } from "../core/mail/mx.ts";
import { idTimePrefix } from "../core/ids.ts";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  getWebhookState,
  listWebhookFailures,
  listWebhooks,
  publicView,
  replayWebhook,
  rotateWebhookSecret,
  updateWebhook,
  type WebhookEndpoint,
  type WebhookState,
} from "../core/store/webhooks.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { parseJson, parseQuery } from "./validate.ts";
import { idCursor, isoTime, pageLimit } from "./query_fields.ts";

export interface WebhooksDeps {
  kv: Deno.Kv;
  resolver: Resolver;
  /** Networks allowed although not public (POSTERN_WEBHOOK_ALLOW). */
  allowed(address: string): boolean;
  /** Seals signing secrets before they are stored. */
  secretBox: SecretBox;
  now?: () => number;
}

const WebhookUrl = z.string().max(2000).refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password;
  } catch {
    return false;
  }
}, "an http or https URL without user:password@");

export const CreateWebhook = z.object({
  url: WebhookUrl,
  events: z.array(EventTypeSchema).min(1).max(EVENT_TYPES.length),
  description: z.string().max(200).optional(),
}).strict();

export const UpdateWebhook = CreateWebhook.partial().strict().refine(
  (v) => Object.keys(v).length > 0,
  "name at least one field to change",
);

export const ReplayQuery = z.object({
  since: z.union([idCursor, isoTime]).describe("an event id, or an ISO time: events from then on"),
}).strict();

const FailuresQuery = z.object({ limit: pageLimit(100, 1000) }).strict();

function view(endpoint: WebhookEndpoint, state?: WebhookState | null) {
  const p = publicView(endpoint);
  const iso = (ms: number | null | undefined) => ms ? new Date(ms).toISOString() : null;
  return {
    id: p.id,
    url: p.url,
    events: p.events,
    description: p.description,
    created_at: iso(p.createdAt),
    secrets: p.secrets.map((s) => ({
      created_at: iso(s.createdAt),
      expires_at: iso(s.expiresAt),
    })),
    ...(state !== undefined
      ? {
        delivery: state
          ? {
            cursor: state.after,
            delivered: state.delivered,
            given_up: state.givenUp,
            attempts: state.attempts,
            failing_since: iso(state.failingSince),
            last_error: state.lastError,
            last_success_at: iso(state.lastSuccessAt),
            next_attempt_at: state.nextAttemptAt > 0 ? iso(state.nextAttemptAt) : null,
          }
          : null,
      }
      : {}),
  };
}

export function webhooksApi(deps: WebhooksDeps) {
  const app = new Hono<AppEnv>();
  const now = () => (deps.now ?? Date.now)();
  app.use("*", requireAdmin());

  async function checkUrl(url: string) {
    const target = await checkHttpTarget(new URL(url), deps);
    if (!target.ok) {
      throw errors.invalid(`Webhook URL is not allowed: ${target.reason}`, [
        { path: "url", message: target.reason },
      ]);
    }
  }

  async function owned(account: string, id: string): Promise<WebhookEndpoint> {
    const endpoint = /^wh_[a-z0-9]{16}$/.test(id) ? await getWebhook(deps.kv, id) : null;
    if (!endpoint || endpoint.account !== account) throw errors.notFound("webhook");
    return endpoint;
  }

  app.post("/", async (c) => {
    const input = await parseJson(c, CreateWebhook);
    await checkUrl(input.url);
    const { endpoint, secret } = await createWebhook(deps.kv, deps.secretBox, {
      account: c.get("principal").account,
      url: input.url,
      events: input.events,
      ...(input.description !== undefined ? { description: input.description } : {}),
      now: now(),
    });
    return c.json({ ...view(endpoint), secret }, 201);
  });

  app.get("/", async (c) => {
    const list = await listWebhooks(deps.kv, c.get("principal").account);
    return c.json({ data: list.map((e) => view(e)) });
  });

  app.get("/:id", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    return c.json(view(endpoint, (await getWebhookState(deps.kv, endpoint.id)).value));
  });

  app.patch("/:id", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    const input = await parseJson(c, UpdateWebhook);
    if (input.url !== undefined) await checkUrl(input.url);
    const updated = await updateWebhook(deps.kv, endpoint.id, {
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.events !== undefined ? { events: input.events } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
    });
    if (!updated) throw errors.notFound("webhook");
    return c.json(view(updated));
  });

  app.delete("/:id", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    await deleteWebhook(deps.kv, endpoint.id);
    return c.json({ id: endpoint.id, deleted: true });
  });

  app.post("/:id/rotate", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    const rotated = await rotateWebhookSecret(deps.kv, deps.secretBox, endpoint.id, now());
    if (!rotated) throw errors.notFound("webhook");
    return c.json({ ...view(rotated.endpoint), secret: rotated.secret });
  });

  app.post("/:id/replay", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    const { since } = parseQuery(c, ReplayQuery);
    // From the event's millisecond on: an id's first 10 characters are its time.
    const after = typeof since === "number" ? idTimePrefix(since) : since.slice(0, 10);
    const state = await replayWebhook(deps.kv, endpoint.id, after);
    if (!state) throw errors.notFound("webhook");
    return c.json(view(endpoint, state));
  });

  app.get("/:id/failures", async (c) => {
    const endpoint = await owned(c.get("principal").account, c.req.param("id"));
    const { limit } = parseQuery(c, FailuresQuery);
    const failures = await listWebhookFailures(deps.kv, endpoint.id, limit);
    return c.json({
      data: failures.map((f) => ({
        event_id: f.eventId,
        type: f.type,
        message_id: f.msgId,
        attempts: f.attempts,
        last_error: f.lastError,
        given_up_at: new Date(f.at).toISOString(),
      })),
    });
  });

  return app;
}
