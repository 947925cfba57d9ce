/** Webhooks (admin): endpoints, their delivery state and given-up events, replay, rotation. */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import { back, field, type PageContext } from "../context.ts";
import { Action, Badge, Copy, Csrf, Flash, Notice, Page, TextField, when } from "../layout.tsx";
import { errorText } from "../api.ts";
import { ApiError } from "../../errors.ts";
import { EVENT_TYPES } from "../../../core/events/vocabulary.ts";

interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  created_at: string;
  secrets: { created_at: string; expires_at: string | null }[];
  delivery?: {
    cursor: string;
    delivered: number;
    given_up: number;
    attempts: number;
    failing_since: string | null;
    last_error: string | null;
    last_success_at: string | null;
    next_attempt_at: string | null;
  } | null;
}

function asUtc(value: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) ? `${value}Z` : value;
}

export function webhookPages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/webhooks", async (c) => {
    const principal = c.get("principal");
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(principal, "GET", "/v1/webhooks"),
    ]);
    if (res.status === 403) throw new ApiError(403, "forbidden", errorText(res));
    const list: WebhookView[] = res.ok
      ? (await Promise.all(
        (res.json.data as WebhookView[]).map((w) =>
          ctx.api(principal, "GET", `/v1/webhooks/${w.id}`)
        ),
      )).filter((r) => r.ok).map((r) => r.json)
      : [];
    return c.html(
      <Page frame={frame} title="Webhooks">
        <Flash query={c.req.query()} />
        {res.ok ? null : <Notice kind="error">{errorText(res)}</Notice>}
        <div class="card">
          {list.length === 0
            ? <p class="muted">No webhook endpoints yet.</p>
            : (
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Endpoint</th>
                      <th>Events</th>
                      <th>Delivered</th>
                      <th>State</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((w) => (
                      <tr>
                        <td data-label="Endpoint">
                          <a href={`${BASE}/webhooks/${w.id}`}>
                            <code>{w.url}</code>
                          </a>
                          {w.description ? <div class="muted small">{w.description}</div> : null}
                        </td>
                        <td data-label="Events">{w.events.join(", ")}</td>
                        <td data-label="Delivered">
                          {w.delivery?.delivered ?? 0} sent, {w.delivery?.given_up ?? 0} given up
                        </td>
                        <td data-label="State">
                          <Badge status={w.delivery?.failing_since ? "failed" : "ok"} />
                          {w.delivery?.last_error
                            ? <div class="small mono">{w.delivery.last_error}</div>
                            : null}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
        </div>
        <form method="post" action={`${BASE}/webhooks`} class="card">
          <h2>New endpoint</h2>
          <Csrf token={frame.csrf} />
          <TextField name="url" label="URL" type="url" placeholder="https://…" required />
          <TextField name="description" label="Description" />
          <fieldset>
            <legend>Events</legend>
            <div class="checks">
              {EVENT_TYPES.map((t) => (
                <label class="check">
                  <input
                    type="checkbox"
                    name={`event_${t}`}
                    value="true"
                    checked={t !== "accepted"}
                  />{" "}
                  {t}
                </label>
              ))}
            </div>
          </fieldset>
          <div class="actions">
            <button type="submit">Add endpoint</button>
          </div>
        </form>
      </Page>,
    );
  });

  app.post("/webhooks", async (c) => {
    const form = await c.req.parseBody();
    const description = field(form, "description");
    const res = await ctx.api(c.get("principal"), "POST", "/v1/webhooks", {
      url: field(form, "url"),
      events: EVENT_TYPES.filter((t) => field(form, `event_${t}`) === "true"),
      ...(description ? { description } : {}),
    });
    if (!res.ok) return back(c, `${BASE}/webhooks`, { error: errorText(res) });
    const reveal = ctx.reveals.put(c.get("sessionToken"), {
      kind: "webhook",
      id: res.json.id,
      secret: res.json.secret,
    });
    return c.redirect(`${BASE}/webhooks/${res.json.id}?reveal=${reveal}`, 303);
  });

  app.get("/webhooks/:id", async (c) => {
    const principal = c.get("principal");
    const id = encodeURIComponent(c.req.param("id"));
    const [frame, res, failures] = await Promise.all([
      ctx.frame(c),
      ctx.api(principal, "GET", `/v1/webhooks/${id}`),
      ctx.api(principal, "GET", `/v1/webhooks/${id}/failures?limit=50`),
    ]);
    if (!res.ok) throw new ApiError(res.status as 404, "not_found", errorText(res));
    const w: WebhookView = res.json;
    const revealId = c.req.query("reveal");
    const revealed = revealId ? ctx.reveals.take(c.get("sessionToken"), revealId) : null;
    const d = w.delivery;
    return c.html(
      <Page frame={frame} title="Webhook endpoint">
        <Flash query={c.req.query()} />
        {revealed && revealed.id === w.id
          ? (
            <div class="secret" role="status">
              <h2>Signing secret: copy it now</h2>
              <p>It is shown this once. Verify each request's signature with it.</p>
              <Copy text={revealed.secret} label="signing secret" />
            </div>
          )
          : null}
        <div class="card">
          <p>
            <code>{w.url}</code>
          </p>
          <p class="muted">Events: {w.events.join(", ")}</p>
          <div class="kpis">
            <div class="kpi">
              <span class="muted small">sent</span>
              <b>{d?.delivered ?? 0}</b>
            </div>
            <div class="kpi">
              <span class="muted small">given up</span>
              <b>{d?.given_up ?? 0}</b>
            </div>
            <div class="kpi">
              <span class="muted small">last success</span>
              <span>{when(d?.last_success_at)}</span>
            </div>
            <div class="kpi">
              <span class="muted small">failing since</span>
              <span>{when(d?.failing_since)}</span>
            </div>
          </div>
          {d?.last_error
            ? (
              <Notice kind="warn">
                Last error: {d.last_error}; attempt {d.attempts}, next {when(d.next_attempt_at)}
              </Notice>
            )
            : null}
          <p class="muted small">
            Secrets:{" "}
            {w.secrets.map((s) =>
              `made ${when(s.created_at)}${s.expires_at ? `, expires ${when(s.expires_at)}` : ""}`
            ).join("; ")}
          </p>
          <div class="actions">
            <Action
              frame={frame}
              action={`${BASE}/webhooks/${w.id}/rotate`}
              label="Rotate signing secret"
              kind="secondary"
            />
          </div>
        </div>
        <form method="post" action={`${BASE}/webhooks/${w.id}/replay`} class="card">
          <h2>Replay</h2>
          <Csrf token={frame.csrf} />
          <TextField
            name="since"
            label="Send every event again from (UTC)"
            type="datetime-local"
            required
          />
          <div class="actions">
            <button type="submit">Replay from then</button>
          </div>
        </form>
        <div class="card">
          <h2>Recent events given up</h2>
          {!failures.ok || failures.json.data.length === 0
            ? <p class="muted">None.</p>
            : (
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Given up</th>
                      <th>Event</th>
                      <th>Message</th>
                      <th class="num">Attempts</th>
                      <th>Last error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {failures.json.data.map((
                      f: {
                        given_up_at: string;
                        type: string;
                        message_id: string;
                        attempts: number;
                        last_error: string;
                      },
                    ) => (
                      <tr>
                        <td data-label="Given up">{when(f.given_up_at)}</td>
                        <td data-label="Event">
                          <Badge status={f.type} />
                        </td>
                        <td data-label="Message">
                          <a href={`${BASE}/messages/${f.message_id}`}>{f.message_id}</a>
                        </td>
                        <td data-label="Attempts" class="num">{f.attempts}</td>
                        <td data-label="Last error" class="mono">{f.last_error}</td>
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

  app.post("/webhooks/:id/rotate", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const res = await ctx.api(c.get("principal"), "POST", `/v1/webhooks/${id}/rotate`);
    if (!res.ok) return back(c, `${BASE}/webhooks/${id}`, { error: errorText(res) });
    const reveal = ctx.reveals.put(c.get("sessionToken"), {
      kind: "webhook",
      id: res.json.id,
      secret: res.json.secret,
    });
    return c.redirect(`${BASE}/webhooks/${id}?reveal=${reveal}`, 303);
  });

  app.post("/webhooks/:id/replay", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const form = await c.req.parseBody();
    const since = encodeURIComponent(asUtc(field(form, "since")));
    const res = await ctx.api(
      c.get("principal"),
      "POST",
      `/v1/webhooks/${id}/replay?since=${since}`,
    );
    return back(c, `${BASE}/webhooks/${id}`, {
      ...(res.ok
        ? { notice: "Replay started: events from then on are sent again" }
        : { error: errorText(res) }),
    });
  });
}
