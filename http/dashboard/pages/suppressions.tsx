/** Suppressions: look an address up, page through the list, add and remove. */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import { back, field, type PageContext } from "../context.ts";
import { Action, Csrf, Flash, Page, TextField, when } from "../layout.tsx";
import { errorText } from "../api.ts";

interface SuppressionView {
  address: string;
  reason: string;
  source: string;
  created_at: string;
  message_id?: string;
  reply?: string;
}

export function suppressionPages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/suppressions", async (c) => {
    const principal = c.get("principal");
    const q = (c.req.query("q") ?? "").trim();
    const cursor = c.req.query("cursor");
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      q ? ctx.api(principal, "GET", `/v1/suppressions/${encodeURIComponent(q)}`) : ctx.api(
        principal,
        "GET",
        `/v1/suppressions?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      ),
    ]);
    const items: SuppressionView[] = !res.ok ? [] : q ? [res.json] : res.json.data;
    const next: string | null = !q && res.ok ? res.json.next_cursor : null;
    return c.html(
      <Page frame={frame} title="Suppressions">
        <Flash query={c.req.query()} />
        <form method="get" action={`${BASE}/suppressions`} class="card" role="search">
          <TextField name="q" label="Find an address" type="search" value={q} />
          <div class="actions">
            <button type="submit">Find</button>
            <a class="button secondary" href={`${BASE}/suppressions`}>Show all</a>
          </div>
        </form>
        <div class="card">
          {items.length === 0
            ? (
              <p class="muted">
                {q ? `${q} is not suppressed.` : "No suppressed addresses."}
                {!res.ok && res.status !== 404 ? ` ${errorText(res)}` : ""}
              </p>
            )
            : (
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Address</th>
                      <th>Reason</th>
                      <th>Source</th>
                      <th>Since</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    {items.map((s) => (
                      <tr>
                        <td data-label="Address">{s.address}</td>
                        <td data-label="Reason">
                          {s.reason}
                          {s.reply ? <div class="small mono">{s.reply}</div> : null}
                        </td>
                        <td data-label="Source">
                          {s.source}
                          {s.message_id
                            ? (
                              <div>
                                <a href={`${BASE}/messages/${s.message_id}`}>message</a>
                              </div>
                            )
                            : null}
                        </td>
                        <td data-label="Since">{when(s.created_at)}</td>
                        <td>
                          <Action
                            frame={frame}
                            action={`${BASE}/suppressions/remove`}
                            label="Remove"
                            kind="secondary"
                            fields={{ address: s.address }}
                          />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          {next
            ? (
              <div class="pager">
                <a
                  class="button secondary"
                  href={`${BASE}/suppressions?cursor=${encodeURIComponent(next)}`}
                >
                  More
                </a>
              </div>
            )
            : null}
        </div>
        <form method="post" action={`${BASE}/suppressions`} class="card">
          <h2>Suppress an address</h2>
          <Csrf token={frame.csrf} />
          <div class="fields">
            <TextField name="address" label="Address" type="email" required />
            <TextField name="reason" label="Reason" placeholder="manual" />
          </div>
          <div class="actions">
            <button type="submit">Add</button>
          </div>
        </form>
      </Page>,
    );
  });

  app.post("/suppressions", async (c) => {
    const form = await c.req.parseBody();
    const reason = field(form, "reason");
    const res = await ctx.api(c.get("principal"), "POST", "/v1/suppressions", {
      address: field(form, "address"),
      ...(reason ? { reason } : {}),
    });
    return back(
      c,
      `${BASE}/suppressions`,
      res.ok ? { notice: `${res.json.address} is suppressed` } : { error: errorText(res) },
    );
  });

  app.post("/suppressions/remove", async (c) => {
    const form = await c.req.parseBody();
    const address = field(form, "address");
    const res = await ctx.api(
      c.get("principal"),
      "DELETE",
      `/v1/suppressions/${encodeURIComponent(address)}`,
    );
    return back(
      c,
      `${BASE}/suppressions`,
      res.ok ? { notice: `${address} removed` } : { error: errorText(res) },
    );
  });
}
