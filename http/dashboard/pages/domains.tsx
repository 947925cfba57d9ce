/** Domains: the DNS records to publish (with copy buttons), verification, DKIM rotation. */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import { back, field, type PageContext } from "../context.ts";
import { Action, Badge, Copy, Csrf, Flash, Page, TextField, when } from "../layout.tsx";
import { errorText } from "../api.ts";
import { ApiError } from "../../errors.ts";

interface DomainView {
  id: string;
  name: string;
  verified: boolean;
  verified_at: string | null;
  last_checked_at: string | null;
  dkim: { selector: string; algorithm: string; status: string; created_at: string }[];
  records: {
    purpose: string;
    type: string;
    name: string;
    value: string;
    required: boolean;
    state: string | null;
  }[];
}

export function domainPages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/domains", async (c) => {
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", "/v1/domains"),
    ]);
    const list: DomainView[] = res.ok ? res.json.data : [];
    return c.html(
      <Page frame={frame} title="Domains">
        <Flash query={c.req.query()} />
        <div class="card">
          {list.length === 0
            ? <p class="muted">No sending domains yet: add one to sign its mail with DKIM.</p>
            : (
              <div class="table-wrap">
                <table class="stack">
                  <thead>
                    <tr>
                      <th>Domain</th>
                      <th>Status</th>
                      <th>DKIM</th>
                      <th>Last checked</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((d) => (
                      <tr>
                        <td data-label="Domain">
                          <a href={`${BASE}/domains/${d.id}`}>{d.name}</a>
                        </td>
                        <td data-label="Status">
                          <Badge status={d.verified ? "verified" : "pending"} />
                        </td>
                        <td data-label="DKIM">
                          {d.dkim.map((k) => `${k.selector} (${k.algorithm}, ${k.status})`).join(
                            "; ",
                          )}
                        </td>
                        <td data-label="Last checked">{when(d.last_checked_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
        </div>
        {frame.principal.kind === "admin"
          ? (
            <form method="post" action={`${BASE}/domains`} class="card">
              <h2>Add a sending domain</h2>
              <Csrf token={frame.csrf} />
              <TextField name="name" label="Domain name" placeholder="example.com" required />
              <fieldset>
                <legend>DKIM keys</legend>
                <div class="checks">
                  <label class="check">
                    <input type="checkbox" name="rsa" value="true" checked /> RSA 2048
                  </label>
                  <label class="check">
                    <input type="checkbox" name="ed25519" value="true" /> Ed25519 (as well)
                  </label>
                </div>
              </fieldset>
              <div class="actions">
                <button type="submit">Add domain</button>
              </div>
            </form>
          )
          : null}
      </Page>,
    );
  });

  app.post("/domains", async (c) => {
    const form = await c.req.parseBody();
    const algorithms = ["rsa", "ed25519"].filter((a) => field(form, a) === "true");
    const res = await ctx.api(c.get("principal"), "POST", "/v1/domains", {
      name: field(form, "name"),
      dkim: { algorithms: algorithms.length ? algorithms : ["rsa"] },
    });
    if (!res.ok) return back(c, `${BASE}/domains`, { error: errorText(res) });
    return back(c, `${BASE}/domains/${res.json.id}`, {
      notice: `${res.json.name} added: publish the records below, then verify`,
    });
  });

  app.get("/domains/:id", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", `/v1/domains/${id}`),
    ]);
    if (!res.ok) throw new ApiError(404, "not_found", "Domain not found");
    const d: DomainView = res.json;
    const admin = frame.principal.kind === "admin";
    return c.html(
      <Page frame={frame} title={d.name}>
        <Flash query={c.req.query()} />
        <div class="card">
          <p>
            <Badge status={d.verified ? "verified" : "pending"} />{" "}
            {d.verified ? `verified ${when(d.verified_at)}` : "not verified yet"} · last checked
            {" "}
            {when(d.last_checked_at)}
          </p>
          <h2>DNS records to publish</h2>
          <div class="table-wrap">
            <table class="stack">
              <thead>
                <tr>
                  <th>Purpose</th>
                  <th>Type</th>
                  <th>Name</th>
                  <th>Value</th>
                  <th>Found</th>
                </tr>
              </thead>
              <tbody>
                {d.records.map((r) => (
                  <tr>
                    <td data-label="Purpose">
                      {r.purpose}
                      {r.required ? "" : <span class="muted small gap">(suggested)</span>}
                    </td>
                    <td data-label="Type">{r.type}</td>
                    <td data-label="Name">
                      <Copy text={r.name} label={`${r.purpose} name`} />
                    </td>
                    <td data-label="Value">
                      <Copy text={r.value} label={`${r.purpose} value`} />
                    </td>
                    <td data-label="Found">
                      <Badge status={r.state ?? "not checked"} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="actions">
            <Action frame={frame} action={`${BASE}/domains/${d.id}/verify`} label="Verify now" />
            {admin
              ? (
                <Action
                  frame={frame}
                  action={`${BASE}/domains/${d.id}/rotate-dkim`}
                  label="Rotate DKIM keys"
                  kind="secondary"
                />
              )
              : null}
          </div>
          <h2>DKIM keys</h2>
          <ul>
            {d.dkim.map((k) => (
              <li>
                <code>{k.selector}</code> {k.algorithm} <Badge status={k.status} /> created{" "}
                {when(k.created_at)}
              </li>
            ))}
          </ul>
        </div>
      </Page>,
    );
  });

  app.post("/domains/:id/verify", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const res = await ctx.api(c.get("principal"), "POST", `/v1/domains/${id}/verify`);
    const to = `${BASE}/domains/${id}`;
    if (!res.ok) return back(c, to, { error: errorText(res) });
    const missing = (res.json.records as { state: string; required: boolean }[])
      .filter((r) => r.required && r.state !== "verified").length;
    return back(c, to, {
      notice: res.json.verified
        ? `${res.json.name} is verified`
        : `Not verified yet: ${missing} required record(s) not found as published`,
    });
  });

  app.post("/domains/:id/rotate-dkim", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const res = await ctx.api(c.get("principal"), "POST", `/v1/domains/${id}/rotate-dkim`);
    return back(c, `${BASE}/domains/${id}`, {
      ...(res.ok
        ? { notice: "New DKIM keys made: publish their records, then verify to switch" }
        : { error: errorText(res) }),
    });
  });
}
