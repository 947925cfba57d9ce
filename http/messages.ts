/** /v1/messages/:id: each recipient's status and the message's timeline of events. */
import { Hono } from "hono";
import { listMessageEvents } from "../core/store/events.ts";
import { listRows, loadMessage } from "../core/store/queue.ts";
import type { AppEnv } from "./auth.ts";
import { errors } from "./errors.ts";

export function messagesApi(kv: Deno.Kv) {
  const app = new Hono<AppEnv>();

  app.get("/:id", async (c) => {
    const id = c.req.param("id");
    if (!/^[0-9A-Z]{26}$/.test(id)) throw errors.notFound("message");
    const msg = await loadMessage(kv, id);
    if (!msg || msg.account !== c.get("principal").account) throw errors.notFound("message");
    const rows = await listRows(kv, id);
    const events = await listMessageEvents(kv, id);
    return c.json({
      id: msg.id,
      from: msg.mailFrom,
      size: msg.size,
      subject: msg.subject,
      message_id: msg.messageId,
      created_at: new Date(msg.createdAt).toISOString(),
      via: msg.via,
      tags: msg.tags ?? [],
      test: msg.test === true,
      metadata: msg.metadata ?? {},
      recipients: rows.map((r) => ({
        address: r.rcpt,
        status: r.status,
        attempts: r.attempts,
        next_attempt_at: r.nextAttemptAt && r.status === "deferred"
          ? new Date(r.nextAttemptAt).toISOString()
          : null,
        last_reply: r.lastReply ?? null,
        category: r.lastCategory ?? null,
        source_address: r.lastSource ?? null,
        // Why a deferred recipient waits, in one sentence, for people reading the API.
        ...(r.status === "deferred" && r.nextAttemptAt
          ? {
            waiting: `${r.lastCategory ?? "other"}: ${
              (r.lastReply ?? "").slice(0, 200)
            }; next attempt ${new Date(r.nextAttemptAt).toISOString()}`,
          }
          : {}),
      })),
      events: events.map((e) => ({
        id: e.id,
        type: e.type,
        at: new Date(e.at).toISOString(),
        recipient: e.rcpt ?? null,
        reply: e.reply ?? null,
        category: e.category ?? null,
        remote_host: e.remoteHost ?? null,
        local_address: e.localAddress ?? null,
        tls: e.tls ?? null,
        ...(e.tlsDetails
          ? {
            tls_details: {
              version: e.tlsDetails.version,
              cipher: e.tlsDetails.cipher,
              verified: e.tlsDetails.verified,
              verified_by: e.tlsDetails.verifiedBy ?? null,
            },
          }
          : {}),
        ...(e.nextAttemptAt ? { next_attempt_at: new Date(e.nextAttemptAt).toISOString() } : {}),
      })),
    });
  });

  return app;
}
