/** Overview: the last hour and day at a glance, the queue's deepest sites, failing webhooks. */
import type { Hono } from "hono";
import type { DashEnv } from "../session.ts";
import { BASE } from "../session.ts";
import type { PageContext } from "../context.ts";
import { Badge, Flash, Notice, Page, when } from "../layout.tsx";
import { type HourCounts, HourlyChart, Legend } from "../chart.tsx";
import { errorText } from "../api.ts";

const HOUR = 3_600_000;
const TYPES = ["accepted", "delivered", "deferred", "bounced", "complained"] as const;

interface SiteRow {
  site: string;
  domains: string[];
  depth: number;
  depth_truncated: boolean;
  state: string;
  throttled_until: string | null;
  oldest_age_s: number | null;
}

interface WebhookRow {
  id: string;
  url: string;
  delivery: { failing_since: string | null; last_error: string | null } | null;
}

export function overviewPages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/", async (c) => {
    const principal = c.get("principal");
    const now = Date.now();
    const firstHour = Math.floor(now / HOUR) * HOUR - 23 * HOUR;
    const admin = principal.kind === "admin";
    const [frame, stats, queue, hooks] = await Promise.all([
      ctx.frame(c),
      ctx.api(
        principal,
        "GET",
        `/v1/stats?by=hour&since=${new Date(firstHour).toISOString()}`,
      ),
      admin ? ctx.api(principal, "GET", "/v1/queue") : null,
      admin ? ctx.api(principal, "GET", "/v1/webhooks") : null,
    ]);
    const byHour = new Map<number, HourCounts["counts"]>();
    for (const row of stats.ok ? stats.json.data : []) {
      byHour.set(Date.parse(row.hour), row.counts);
    }
    const hours: HourCounts[] = Array.from({ length: 24 }, (_, i) => {
      const hour = firstHour + i * HOUR;
      return { hour, counts: byHour.get(hour) ?? {} };
    });
    const sum = (from: number, type: string) =>
      hours.filter((h) => h.hour >= from).reduce((s, h) => s + (h.counts[type] ?? 0), 0);
    const lastHourFrom = Math.floor((now - HOUR) / HOUR) * HOUR;

    const sites: SiteRow[] = queue?.ok ? queue.json.data : [];
    const deepest = [...sites].sort((a, b) => b.depth - a.depth).slice(0, 10);
    const troubled = sites.filter((s) => s.state !== "active");
    let failing: WebhookRow[] = [];
    if (hooks?.ok) {
      const details = await Promise.all(
        (hooks.json.data as { id: string }[]).map((h) =>
          ctx.api(principal, "GET", `/v1/webhooks/${h.id}`)
        ),
      );
      failing = details.filter((d) => d.ok && d.json.delivery?.failing_since).map((d) => d.json);
    }

    return c.html(
      <Page frame={frame} title="Overview">
        <Flash query={c.req.query()} />
        <div class="card">
          <h2>Messages, last 24 hours</h2>
          {stats.ok ? null : <Notice kind="error">{errorText(stats)}</Notice>}
          <div class="kpis">
            {TYPES.map((t) => (
              <div class="kpi">
                <span class="muted small">{t}</span>
                <b>{sum(firstHour, t)}</b>
                <span class="muted small">last hour: {sum(lastHourFrom, t)}</span>
              </div>
            ))}
          </div>
          <HourlyChart hours={hours} />
          <Legend />
          <p class="muted small">
            Counts per recipient, in UTC hours; "last hour" is the current and previous clock hour.
            {" "}
            <a href={`${BASE}/activity`}>See every message in Activity</a>.
          </p>
        </div>
        {admin
          ? (
            <div class="grid">
              <div class="card">
                <h2>Queue depth by site</h2>
                {queue && !queue.ok ? <Notice kind="warn">{errorText(queue)}</Notice> : null}
                {deepest.length === 0
                  ? <p class="muted">Nothing is queued.</p>
                  : (
                    <div class="table-wrap">
                      <table>
                        <thead>
                          <tr>
                            <th>Site</th>
                            <th class="num">Queued</th>
                            <th>State</th>
                          </tr>
                        </thead>
                        <tbody>
                          {deepest.map((s) => (
                            <tr>
                              <td>
                                <code>{s.domains.join(", ") || s.site}</code>
                              </td>
                              <td class="num">{s.depth}{s.depth_truncated ? "+" : ""}</td>
                              <td>
                                <Badge status={s.state} />
                              </td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  )}
                <p>
                  <a href={`${BASE}/queue`}>Open the queue</a>
                </p>
              </div>
              <div class="card">
                <h2>Sites in backoff or suspended</h2>
                {troubled.length === 0 ? <p class="muted">None: every site is active.</p> : (
                  <ul>
                    {troubled.map((s) => (
                      <li>
                        <code>{s.domains.join(", ") || s.site}</code> <Badge status={s.state} />
                        {s.throttled_until
                          ? <span class="muted small">until {when(s.throttled_until)}</span>
                          : null}
                      </li>
                    ))}
                  </ul>
                )}
              </div>
              <div class="card">
                <h2>Failing webhook endpoints</h2>
                {failing.length === 0 ? <p class="muted">None.</p> : (
                  <ul>
                    {failing.map((w) => (
                      <li>
                        <a href={`${BASE}/webhooks/${w.id}`}>
                          <code>{w.url}</code>
                        </a>{" "}
                        <span class="muted small">
                          failing since {when(w.delivery?.failing_since)}: {w.delivery?.last_error}
                        </span>
                      </li>
                    ))}
                  </ul>
                )}
              </div>
            </div>
          )
          : null}
      </Page>,
    );
  });
}
