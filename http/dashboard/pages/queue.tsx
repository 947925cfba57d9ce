/** Queue (admin): sites with depth, window, rate, backoff and lease; steer one with a confirm. */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import { back, field, type PageContext } from "../context.ts";
import { Action, Badge, Csrf, Flash, Notice, Page, when } from "../layout.tsx";
import { errorText } from "../api.ts";
import type { SiteView } from "../../../core/queue_control.ts";
import { ApiError } from "../../errors.ts";

const ACTIONS = {
  retry: { method: "POST", path: "retry", confirm: false, done: "retries its queue now" },
  resume: { method: "POST", path: "resume", confirm: false, done: "is resumed" },
  suspend: { method: "POST", path: "suspend", confirm: true, done: "is suspended" },
  purge: { method: "DELETE", path: "", confirm: true, done: "is purged" },
} as const;
type ActionName = keyof typeof ACTIONS;

function age(s: number | null): string {
  if (s === null) return "—";
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

export function queuePages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/queue", async (c) => {
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", "/v1/queue"),
    ]);
    if (res.status === 403) throw new ApiError(403, "forbidden", errorText(res));
    const sites: SiteView[] = res.ok ? res.json.data : [];
    return c.html(
      <Page frame={frame} title="Queue">
        <Flash query={c.req.query()} />
        {res.ok ? null : <Notice kind="error">{errorText(res)}</Notice>}
        <div class="card">
          {sites.length === 0
            ? <p class="muted">No destination sites are known yet.</p>
            : (
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Site</th>
                      <th class="num">Queued</th>
                      <th>Oldest</th>
                      <th>State</th>
                      <th>Window</th>
                      <th>Rate</th>
                      <th>Backoff</th>
                      <th>Lease</th>
                      <th>Actions</th>
                    </tr>
                  </thead>
                  <tbody>
                    {sites.map((s) => (
                      <tr>
                        <td data-label="Site">
                          <b>{s.domains.join(", ") || "—"}</b>
                          <div class="muted small mono">{s.site}</div>
                        </td>
                        <td data-label="Queued" class="num">
                          {s.depth}
                          {s.depth_truncated ? "+" : ""}
                        </td>
                        <td data-label="Oldest">{age(s.oldest_age_s)}</td>
                        <td data-label="State">
                          <Badge status={s.state} />
                        </td>
                        <td data-label="Window">
                          {s.connections} open / {s.in_force.connection_limit} (profile{" "}
                          {s.limits.connection_limit})
                        </td>
                        <td data-label="Rate">{s.in_force.max_message_rate ?? "unlimited"}</td>
                        <td data-label="Backoff">
                          {s.throttled_until ? `until ${when(s.throttled_until)}` : "none"}
                          {s.hosts_down.map((h) => (
                            <div class="small muted">
                              {h.host} down until {when(h.until)}
                            </div>
                          ))}
                        </td>
                        <td data-label="Lease">{s.leased_here ? "this node" : "another node"}</td>
                        <td data-label="Actions">
                          <Action
                            frame={frame}
                            action={`${BASE}/queue/retry`}
                            label="Retry"
                            kind="secondary"
                            fields={{ site: s.site }}
                          />
                          {s.state === "suspended"
                            ? (
                              <Action
                                frame={frame}
                                action={`${BASE}/queue/resume`}
                                label="Resume"
                                kind="secondary"
                                fields={{ site: s.site }}
                              />
                            )
                            : (
                              <a
                                class="button secondary"
                                href={`${BASE}/queue/confirm?action=suspend&site=${
                                  encodeURIComponent(s.site)
                                }`}
                              >
                                Suspend
                              </a>
                            )}
                          <a
                            class="button secondary"
                            href={`${BASE}/queue/confirm?action=purge&site=${
                              encodeURIComponent(s.site)
                            }`}
                          >
                            Purge
                          </a>
                        </td>
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

  app.get("/queue/confirm", async (c) => {
    const action = c.req.query("action") as ActionName;
    const site = c.req.query("site") ?? "";
    const frame = await ctx.frame(c);
    const purge = action === "purge";
    return c.html(
      <Page frame={frame} title={purge ? "Purge a site's queue?" : "Suspend a site?"}>
        <div class="card">
          <p>
            Site <code>{site}</code>
          </p>
          <Notice kind="warn">
            {purge
              ? "Every queued recipient of this site is removed and marked bounced. This cannot be undone."
              : "No mail goes to this site until it is resumed; new mail keeps queuing."}
          </Notice>
          <form method="post" action={`${BASE}/queue/${purge ? "purge" : "suspend"}`}>
            <Csrf token={frame.csrf} />
            <input type="hidden" name="site" value={site} />
            <input type="hidden" name="confirm" value="yes" />
            {purge
              ? (
                <label class="check">
                  <input type="checkbox" name="dsn" value="true" checked />{" "}
                  Send senders a bounce notice (DSN)
                </label>
              )
              : null}
            <div class="actions">
              <button type="submit" class="danger">{purge ? "Purge" : "Suspend"}</button>
              <a class="button secondary" href={`${BASE}/queue`}>Cancel</a>
            </div>
          </form>
        </div>
      </Page>,
    );
  });

  app.post("/queue/:action", async (c) => {
    const name = c.req.param("action") as ActionName;
    const action = ACTIONS[name];
    const form = await c.req.parseBody();
    const site = field(form, "site");
    const returnTo = /^\/dashboard\/messages\/[0-9A-Z]{26}$/.test(field(form, "back"))
      ? field(form, "back")
      : `${BASE}/queue`;
    if (!action || !site) return back(c, returnTo, { error: "Unknown queue action" });
    if (action.confirm && field(form, "confirm") !== "yes") {
      return c.redirect(`${BASE}/queue/confirm?action=${name}&site=${encodeURIComponent(site)}`);
    }
    const path = `/v1/queue/${encodeURIComponent(site)}${action.path ? `/${action.path}` : ""}${
      name === "purge" ? `?dsn=${field(form, "dsn") === "true"}` : ""
    }`;
    const res = await ctx.api(c.get("principal"), action.method, path);
    if (!res.ok) return back(c, returnTo, { error: errorText(res) });
    const removed = name === "purge" ? ` (${res.json.removed} recipients removed)` : "";
    return back(c, returnTo, { notice: `${site} ${action.done}${removed}` });
  });
}
