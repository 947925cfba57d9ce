/**
 * Credentials: SMTP logins that double as API keys. A new password is shown once, with the
 * settings an SMTP client needs; the admin rotates, revokes and edits scopes here.
 */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import { back, field, listField, type PageContext } from "../context.ts";
import {
  Action,
  Badge,
  Copy,
  Csrf,
  Flash,
  type Frame,
  Notice,
  Page,
  TextField,
  when,
} from "../layout.tsx";
import { errorText } from "../api.ts";
import { ApiError } from "../../errors.ts";

interface CredentialView {
  id: string;
  name: string;
  username: string;
  domains: string[];
  allowed_ips: string[];
  rate_limit: string | null;
  daily_quota: number | null;
  pool: string | null;
  dsn: boolean;
  secrets: { id: string; created_at: string }[];
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** The form's scope fields as the API's JSON; `all` sends empty fields as "none". */
function scopesFromForm(form: Record<string, unknown>, all: boolean) {
  const out: Record<string, unknown> = {};
  const name = field(form, "name");
  if (name || all) out["name"] = name;
  const domains = listField(form, "domains");
  if (domains.length || all) out["domains"] = domains;
  const ips = listField(form, "allowed_ips");
  if (ips.length || all) out["allowed_ips"] = ips;
  const rate = field(form, "rate_limit");
  if (rate || all) out["rate_limit"] = rate || null;
  const quota = field(form, "daily_quota");
  if (quota || all) out["daily_quota"] = quota ? Number(quota) : null;
  const pool = field(form, "pool");
  if (pool || all) out["pool"] = pool || null;
  out["dsn"] = field(form, "dsn") === "true";
  return out;
}

function ScopeFields(props: { c?: CredentialView }) {
  const c = props.c;
  return (
    <div class="fields">
      <TextField name="name" label="Name" value={c?.name} required />
      <TextField
        name="domains"
        label="Sender domains"
        value={c?.domains.join(", ")}
        hint="Comma-separated; empty = any domain"
      />
      <TextField
        name="allowed_ips"
        label="Allowed IPs"
        value={c?.allowed_ips.join(", ")}
        hint="Addresses or CIDRs; empty = anywhere"
      />
      <TextField
        name="rate_limit"
        label="Rate limit"
        value={c?.rate_limit ?? ""}
        hint='e.g. "100/min"; empty = unlimited'
      />
      <TextField
        name="daily_quota"
        label="Daily quota"
        type="number"
        value={c?.daily_quota?.toString() ?? ""}
        hint="Messages per UTC day; empty = unlimited"
      />
      <TextField name="pool" label="IP pool" value={c?.pool ?? ""} hint="empty = default" />
      <div>
        <label class="check">
          <input type="checkbox" name="dsn" value="true" checked={c ? c.dsn : true} />
          Send bounce notices (DSN) to senders
        </label>
      </div>
    </div>
  );
}

function SmtpSettings(
  props: {
    host: string;
    submissionPort: number;
    smtpsPort: number;
    username: string;
    password: string;
  },
) {
  return (
    <div class="secret" role="status">
      <h2>Copy this password now</h2>
      <p>It is shown this once; Postern keeps only a hash. Lost it? Rotate to get a new one.</p>
      <table>
        <tbody>
          <tr>
            <th>Password / API key</th>
            <td>
              <Copy text={props.password} label="password" />
            </td>
          </tr>
          <tr>
            <th>Username</th>
            <td>
              <Copy text={props.username} label="username" />
            </td>
          </tr>
          <tr>
            <th>SMTP host</th>
            <td>
              <Copy text={props.host} label="host" />
            </td>
          </tr>
          <tr>
            <th>Port {props.submissionPort}</th>
            <td>STARTTLS (submission)</td>
          </tr>
          <tr>
            <th>Port {props.smtpsPort}</th>
            <td>TLS from the first byte (SMTPS)</td>
          </tr>
          <tr>
            <th>Authentication</th>
            <td>PLAIN or LOGIN, over TLS only</td>
          </tr>
          <tr>
            <th>Try it</th>
            <td>
              <Copy
                text={`swaks --server ${props.host}:${props.submissionPort} --tls --auth PLAIN --auth-user ${props.username} --auth-password ${props.password} --from you@your-domain --to you@example.org`}
                label="swaks command"
              />
            </td>
          </tr>
          <tr>
            <th>HTTP API</th>
            <td>
              <code>Authorization: Bearer {props.password}</code>
            </td>
          </tr>
        </tbody>
      </table>
    </div>
  );
}

function CredentialTable(props: { list: CredentialView[] }) {
  return (
    <div class="table-wrap">
      <table class="stack">
        <thead>
          <tr>
            <th>Name</th>
            <th>Username</th>
            <th>Domains</th>
            <th>Limits</th>
            <th>Last used</th>
            <th>State</th>
          </tr>
        </thead>
        <tbody>
          {props.list.map((cr) => (
            <tr>
              <td data-label="Name">
                <a href={`${BASE}/credentials/${cr.id}`}>{cr.name}</a>
              </td>
              <td data-label="Username">
                <code>{cr.username}</code>
              </td>
              <td data-label="Domains">{cr.domains.join(", ") || "any"}</td>
              <td data-label="Limits">
                {cr.rate_limit ?? "no rate limit"}
                {cr.daily_quota ? `, ${cr.daily_quota}/day` : ""}
              </td>
              <td data-label="Last used">{when(cr.last_used_at)}</td>
              <td data-label="State">
                <Badge status={cr.revoked_at ? "revoked" : "active"} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function credentialPages(app: Hono<DashEnv>, ctx: PageContext) {
  const smtpHost = (url: string) => ctx.smtp.host ?? new URL(url).hostname;

  app.get("/credentials", async (c) => {
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", "/v1/credentials"),
    ]);
    const list: CredentialView[] = res.ok ? res.json.data : [];
    return c.html(
      <Page frame={frame} title="Credentials">
        <Flash query={c.req.query()} />
        <div class="card">
          {list.length === 0
            ? <p class="muted">No credentials yet.</p>
            : <CredentialTable list={list} />}
        </div>
        {frame.principal.kind === "admin"
          ? (
            <form method="post" action={`${BASE}/credentials`} class="card">
              <h2>New credential</h2>
              <Csrf token={frame.csrf} />
              <ScopeFields />
              <div class="actions">
                <button type="submit">Create credential</button>
              </div>
            </form>
          )
          : <p class="muted">Only the admin creates and changes credentials.</p>}
      </Page>,
    );
  });

  app.post("/credentials", async (c) => {
    const form = await c.req.parseBody();
    const res = await ctx.api(
      c.get("principal"),
      "POST",
      "/v1/credentials",
      scopesFromForm(form, false),
    );
    if (!res.ok) return back(c, `${BASE}/credentials`, { error: errorText(res) });
    const reveal = ctx.reveals.put(c.get("sessionToken"), {
      kind: "credential",
      id: res.json.id,
      secret: res.json.password,
      username: res.json.username,
    });
    return c.redirect(`${BASE}/credentials/${res.json.id}?reveal=${reveal}`, 303);
  });

  app.get("/credentials/:id", async (c) => {
    const id = c.req.param("id");
    const [frame, res] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", `/v1/credentials/${encodeURIComponent(id)}`),
    ]);
    if (!res.ok) throw new ApiError(404, "not_found", "Credential not found");
    const cr: CredentialView = res.json;
    const revealId = c.req.query("reveal");
    const revealed = revealId ? ctx.reveals.take(c.get("sessionToken"), revealId) : null;
    const admin = frame.principal.kind === "admin";
    return c.html(
      <Page frame={frame} title={`Credential ${cr.name}`}>
        <Flash query={c.req.query()} />
        {revealed && revealed.id === cr.id
          ? (
            <SmtpSettings
              host={smtpHost(c.req.url)}
              submissionPort={ctx.smtp.submissionPort}
              smtpsPort={ctx.smtp.smtpsPort}
              username={cr.username}
              password={revealed.secret}
            />
          )
          : revealId
          ? (
            <Notice kind="warn">
              The password was shown once and is not shown again. Rotate the credential for a new
              one.
            </Notice>
          )
          : null}
        <div class="card">
          <p>
            Username <code>{cr.username}</code> · created {when(cr.created_at)} · last used{" "}
            {when(cr.last_used_at)} · <Badge status={cr.revoked_at ? "revoked" : "active"} />
          </p>
          <h2>Secrets</h2>
          <ul>
            {cr.secrets.map((s) => (
              <li>
                <code>{s.id}</code> issued {when(s.created_at)}{" "}
                {admin && cr.secrets.length > 1 && !cr.revoked_at
                  ? (
                    <Action
                      frame={frame}
                      action={`${BASE}/credentials/${cr.id}/secrets/${s.id}/revoke`}
                      label="Revoke this secret"
                      kind="secondary"
                    />
                  )
                  : null}
              </li>
            ))}
          </ul>
          {admin && !cr.revoked_at
            ? (
              <div class="actions">
                <Action
                  frame={frame}
                  action={`${BASE}/credentials/${cr.id}/rotate`}
                  label="Rotate (issue a second password)"
                  kind="secondary"
                />
              </div>
            )
            : null}
        </div>
        {admin && !cr.revoked_at ? <EditForm frame={frame} cr={cr} /> : null}
      </Page>,
    );
  });

  app.post("/credentials/:id", async (c) => {
    const id = c.req.param("id");
    const form = await c.req.parseBody();
    const res = await ctx.api(
      c.get("principal"),
      "PATCH",
      `/v1/credentials/${encodeURIComponent(id)}`,
      scopesFromForm(form, true),
    );
    const to = `${BASE}/credentials/${encodeURIComponent(id)}`;
    return back(c, to, res.ok ? { notice: "Scopes saved" } : { error: errorText(res) });
  });

  app.post("/credentials/:id/rotate", async (c) => {
    const id = c.req.param("id");
    const res = await ctx.api(
      c.get("principal"),
      "POST",
      `/v1/credentials/${encodeURIComponent(id)}/rotate`,
    );
    const to = `${BASE}/credentials/${encodeURIComponent(id)}`;
    if (!res.ok) return back(c, to, { error: errorText(res) });
    const reveal = ctx.reveals.put(c.get("sessionToken"), {
      kind: "credential",
      id: res.json.id,
      secret: res.json.password,
    });
    return c.redirect(`${to}?reveal=${reveal}`, 303);
  });

  app.post("/credentials/:id/secrets/:secret/revoke", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const res = await ctx.api(
      c.get("principal"),
      "DELETE",
      `/v1/credentials/${id}/secrets/${encodeURIComponent(c.req.param("secret"))}`,
    );
    return back(
      c,
      `${BASE}/credentials/${id}`,
      res.ok ? { notice: "Secret revoked" } : { error: errorText(res) },
    );
  });

  app.post("/credentials/:id/revoke", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const form = await c.req.parseBody();
    if (field(form, "confirm") !== "yes") {
      return back(c, `${BASE}/credentials/${id}`, {
        error: "Tick the box to confirm revoking the credential",
      });
    }
    const res = await ctx.api(c.get("principal"), "DELETE", `/v1/credentials/${id}`);
    return back(
      c,
      `${BASE}/credentials/${id}`,
      res.ok ? { notice: "Credential revoked" } : { error: errorText(res) },
    );
  });
}

function EditForm(props: { frame: Frame; cr: CredentialView }) {
  const { frame, cr } = props;
  return (
    <>
      <form method="post" action={`${BASE}/credentials/${cr.id}`} class="card">
        <h2>Scopes</h2>
        <Csrf token={frame.csrf} />
        <ScopeFields c={cr} />
        <div class="actions">
          <button type="submit">Save scopes</button>
        </div>
      </form>
      <form method="post" action={`${BASE}/credentials/${cr.id}/revoke`} class="card">
        <h2>Revoke</h2>
        <Csrf token={frame.csrf} />
        <label class="check">
          <input type="checkbox" name="confirm" value="yes" required />
          Revoke {cr.name}: its passwords stop working for SMTP and the API at once
        </label>
        <div class="actions">
          <button type="submit" class="danger">Revoke credential</button>
        </div>
      </form>
    </>
  );
}
