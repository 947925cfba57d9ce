/**
 * One message: each recipient's state and why it waits, the timeline of attempts and events,
 * which webhook endpoints have been sent each event, and the header section while the body is
 * still stored.
 */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import type { PageContext } from "../context.ts";
import { Action, Badge, Flash, Page, when } from "../layout.tsx";
import { ApiError } from "../../errors.ts";
import { loadMessage } from "../../../core/store/queue.ts";
import { readBody } from "../../../core/store/bodies.ts";
import { bytesToBinary, parseHeaderFields } from "../../../core/mail/headers.ts";
import type { Principal } from "../../auth.ts";

interface Recipient {
  address: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_reply: string | null;
  category: string | null;
  source_address: string | null;
  waiting?: string;
}

interface TimelineEvent {
  id: string;
  type: string;
  at: string;
  recipient: string | null;
  reply: string | null;
  remote_host: string | null;
  local_address: string | null;
  tls: string | null;
  tls_details?: { cipher: string; verified: boolean; verified_by: string | null };
  next_attempt_at?: string;
}

const MAX_HEADER_BYTES = 32 * 1024;

/** The stored header section (with the DKIM fields signed at intake), or null once deleted. */
async function headersOf(kv: Deno.Kv, id: string) {
  const msg = await loadMessage(kv, id);
  if (!msg || (msg.chunks === 0 && !msg.spooled)) return null;
  try {
    let text = "";
    for await (const chunk of readBody(kv, msg)) {
      text += bytesToBinary(chunk);
      if (text.includes("\r\n\r\n") || text.length > MAX_HEADER_BYTES) break;
    }
    const end = text.indexOf("\r\n\r\n");
    const block = (msg.prefix ?? "") + text.slice(0, end < 0 ? MAX_HEADER_BYTES : end);
    return parseHeaderFields(block);
  } catch {
    return null;
  }
}

/** Per event id, per subscribed endpoint: sent, pending, or given up (admin only). */
async function webhookDeliveries(
  ctx: PageContext,
  principal: Principal,
  msgId: string,
  events: TimelineEvent[],
) {
  if (principal.kind !== "admin") return null;
  const list = await ctx.api(principal, "GET", "/v1/webhooks");
  if (!list.ok) return null;
  const out: { url: string; id: string; byEvent: Map<string, string> }[] = [];
  for (const hook of list.json.data as { id: string; url: string; events: string[] }[]) {
    const [detail, failures] = await Promise.all([
      ctx.api(principal, "GET", `/v1/webhooks/${hook.id}`),
      ctx.api(principal, "GET", `/v1/webhooks/${hook.id}/failures?limit=1000`),
    ]);
    const cursor: string | null = detail.json?.delivery?.cursor ?? null;
    const givenUp = new Set(
      (failures.ok ? failures.json.data : [])
        .filter((f: { message_id: string }) => f.message_id === msgId)
        .map((f: { event_id: string }) => f.event_id),
    );
    const byEvent = new Map<string, string>();
    for (const e of events) {
      if (!hook.events.includes(e.type)) continue;
      byEvent.set(
        e.id,
        givenUp.has(e.id) ? "failed" : cursor !== null && cursor >= e.id ? "delivered" : "pending",
      );
    }
    out.push({ url: hook.url, id: hook.id, byEvent });
  }
  return out;
}

export function messagePages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/messages/:id", async (c) => {
    const principal = c.get("principal");
    const id = c.req.param("id");
    const res = await ctx.api(principal, "GET", `/v1/messages/${encodeURIComponent(id)}`);
    if (!res.ok) throw new ApiError(res.status as 404, "not_found", "Message not found");
    const m = res.json;
    const recipients: Recipient[] = m.recipients;
    const events: TimelineEvent[] = m.events;
    const [frame, headers, hooks] = await Promise.all([
      ctx.frame(c),
      headersOf(ctx.kv, m.id),
      webhookDeliveries(ctx, principal, m.id, events),
    ]);
    const waitingDomains = [
      ...new Set(
        recipients.filter((r) => r.status === "deferred" || r.status === "queued")
          .map((r) => r.address.split("@").pop()!.toLowerCase()),
      ),
    ];
    return c.html(
      <Page frame={frame} title={m.subject || "(no subject)"}>
        <Flash query={c.req.query()} />
        <div class="card">
          <div class="table-wrap">
            <table>
              <tbody>
                <tr>
                  <th>Message</th>
                  <td>
                    <code>{m.id}</code>
                  </td>
                </tr>
                <tr>
                  <th>From</th>
                  <td>{m.from || "<>"}</td>
                </tr>
                <tr>
                  <th>Accepted</th>
                  <td>{when(m.created_at)} via {m.via}</td>
                </tr>
                <tr>
                  <th>Message-ID</th>
                  <td>
                    <code>{m.message_id}</code>
                  </td>
                </tr>
                <tr>
                  <th>Size</th>
                  <td>{m.size} bytes</td>
                </tr>
                {m.tags.length
                  ? (
                    <tr>
                      <th>Tags</th>
                      <td>{m.tags.join(", ")}</td>
                    </tr>
                  )
                  : null}
              </tbody>
            </table>
          </div>
        </div>
        <div class="card">
          <h2>Recipients</h2>
          <div class="table-wrap">
            <table class="stack">
              <thead>
                <tr>
                  <th>Recipient</th>
                  <th>Status</th>
                  <th class="num">Attempts</th>
                  <th>Last reply</th>
                  <th>Next try</th>
                </tr>
              </thead>
              <tbody>
                {recipients.map((r) => (
                  <tr>
                    <td data-label="Recipient">{r.address}</td>
                    <td data-label="Status">
                      <Badge status={r.status} />
                    </td>
                    <td data-label="Attempts" class="num">{r.attempts}</td>
                    <td data-label="Last reply">
                      <span class="mono">{r.last_reply ?? "—"}</span>
                      {r.waiting ? <div class="muted small">Waiting: {r.waiting}</div> : null}
                    </td>
                    <td data-label="Next try">{when(r.next_attempt_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {waitingDomains.length > 0 && principal.kind === "admin"
            ? (
              <div class="actions">
                {waitingDomains.map((d) => (
                  <Action
                    frame={frame}
                    action={`${BASE}/queue/retry`}
                    label={`Retry ${d} now`}
                    fields={{ site: d, back: `${BASE}/messages/${m.id}` }}
                  />
                ))}
                <p class="muted small">
                  Retrying works per destination site, as the queue API does; the API has no
                  per-message cancel, so a waiting message ends by delivery, bounce or expiry (or by
                  purging its site on the Queue page).
                </p>
              </div>
            )
            : null}
        </div>
        <div class="card">
          <h2>Timeline</h2>
          <ol class="timeline">
            {events.map((e) => (
              <li class={e.type}>
                <Badge status={e.type} /> <b>{when(e.at)}</b>
                {e.recipient ? <span class="gap">· {e.recipient}</span> : null}
                {e.remote_host
                  ? (
                    <div class="small">
                      remote host <code>{e.remote_host}</code>
                      {e.local_address ? <span class="gap">from {e.local_address}</span> : null}
                      {e.tls ? <span>, {e.tls}</span> : null}
                      {e.tls_details
                        ? (
                          <span>
                            {" "}
                            {e.tls_details.cipher}, {e.tls_details.verified
                              ? `verified (${e.tls_details.verified_by})`
                              : "not verified"}
                          </span>
                        )
                        : null}
                    </div>
                  )
                  : null}
                {e.reply ? <div class="mono small">{e.reply}</div> : null}
                {e.next_attempt_at
                  ? <div class="muted small">next attempt {when(e.next_attempt_at)}</div>
                  : null}
                {hooks?.filter((h) => h.byEvent.has(e.id)).map((h) => (
                  <div class="small">
                    webhook <a href={`${BASE}/webhooks/${h.id}`}>{h.url}</a>{" "}
                    <Badge status={h.byEvent.get(e.id)} />
                  </div>
                ))}
              </li>
            ))}
          </ol>
        </div>
        <div class="card">
          <h2>Headers</h2>
          {headers === null
            ? (
              <p class="muted">
                The body is no longer stored (it is deleted once every recipient is final).
              </p>
            )
            : (
              <div class="table-wrap">
                <table>
                  <tbody>
                    {headers.map((h) => (
                      <tr>
                        <th>{h.name}</th>
                        <td class="mono">{h.value}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
        </div>
      </Page>,
    );
  });
}
