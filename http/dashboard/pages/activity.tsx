/** Activity: the delivery log with the API's filters, newest first, a page at a time. */
import type { Hono } from "hono";
import { BASE, type DashEnv } from "../session.ts";
import type { PageContext } from "../context.ts";
import { Badge, Notice, Page, TextField, when } from "../layout.tsx";
import { errorText } from "../api.ts";

const FILTERS = [
  "recipient",
  "from",
  "subject",
  "status",
  "tag",
  "credential",
  "since",
  "until",
] as const;
const STATUSES = ["queued", "deferred", "delivered", "bounced", "suppressed", "held", "dropped"];

/** A datetime-local value ("2026-12-05T07:00") is read as UTC, as the page says. */
function asUtc(value: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) ? `${value}Z` : value;
}

interface Hit {
  id: string;
  from: string;
  subject: string;
  created_at: string;
  tags: string[];
  recipients: { address: string; status: string }[];
}

interface CredentialChoice {
  id: string;
  name: string;
  revoked_at: string | null;
}

/** The account's credentials by name; a chosen id not among them (a typed URL) stays choosable. */
function CredentialSelect(props: { list: CredentialChoice[]; value: string | undefined }) {
  const known = props.list.some((cr) => cr.id === props.value);
  return (
    <div>
      <label for="f-credential">Credential</label>
      <select id="f-credential" name="credential">
        <option value="">any</option>
        {props.list.map((cr) => (
          <option value={cr.id} selected={props.value === cr.id}>
            {cr.name} ({cr.id}){cr.revoked_at ? " — revoked" : ""}
          </option>
        ))}
        {props.value && !known ? <option value={props.value} selected>{props.value}</option> : null}
      </select>
    </div>
  );
}

export function activityPages(app: Hono<DashEnv>, ctx: PageContext) {
  app.get("/activity", async (c) => {
    const query = c.req.query();
    const params = new URLSearchParams();
    for (const f of FILTERS) {
      const v = (query[f] ?? "").trim();
      if (v) params.set(f, f === "since" || f === "until" ? asUtc(v) : v);
    }
    const filterQs = params.toString();
    if (query["cursor"]) params.set("cursor", query["cursor"]);
    params.set("limit", "50");
    const [frame, res, creds] = await Promise.all([
      ctx.frame(c),
      ctx.api(c.get("principal"), "GET", `/v1/messages?${params}`),
      ctx.api(c.get("principal"), "GET", "/v1/credentials"),
    ]);
    const hits: Hit[] = res.ok ? res.json.data : [];
    const credentials: CredentialChoice[] = creds.ok ? creds.json.data : [];
    const next: string | null = res.ok ? res.json.next_cursor : null;
    return c.html(
      <Page frame={frame} title="Activity">
        <form method="get" action={`${BASE}/activity`} class="card" role="search">
          <div class="fields">
            <TextField name="recipient" label="Recipient" value={query["recipient"]} />
            <TextField name="from" label="Sender" value={query["from"]} />
            <TextField
              name="subject"
              label="Subject contains"
              value={query["subject"]}
              hint="Any part, upper or lower case"
            />
            <div>
              <label for="f-status">Status</label>
              <select id="f-status" name="status">
                <option value="">any</option>
                {STATUSES.map((s) => (
                  <option value={s} selected={query["status"] === s}>{s}</option>
                ))}
              </select>
            </div>
            <TextField name="tag" label="Tag" value={query["tag"]} />
            <CredentialSelect list={credentials} value={query["credential"]} />
            <TextField
              name="since"
              label="Accepted from (UTC)"
              type="datetime-local"
              value={query["since"]}
            />
            <TextField
              name="until"
              label="Accepted before (UTC)"
              type="datetime-local"
              value={query["until"]}
            />
          </div>
          <div class="actions">
            <button type="submit">Search</button>
            <a class="button secondary" href={`${BASE}/activity`}>Clear</a>
          </div>
        </form>
        {res.ok ? null : <Notice kind="error">{errorText(res)}</Notice>}
        <div class="card">
          {hits.length === 0 ? <p class="muted">No messages match.</p> : (
            <div class="table-wrap">
              <table class="stack">
                <thead>
                  <tr>
                    <th>Accepted</th>
                    <th>From</th>
                    <th>Recipients</th>
                    <th>Subject</th>
                    <th>Tags</th>
                  </tr>
                </thead>
                <tbody>
                  {hits.map((m) => (
                    <tr>
                      <td data-label="Accepted">
                        <a href={`${BASE}/messages/${m.id}`}>{when(m.created_at)}</a>
                      </td>
                      <td data-label="From">{m.from || "<>"}</td>
                      <td data-label="Recipients">
                        {m.recipients.slice(0, 3).map((r) => (
                          <div>
                            {r.address} <Badge status={r.status} />
                          </div>
                        ))}
                        {m.recipients.length > 3
                          ? <div class="muted small">and {m.recipients.length - 3} more</div>
                          : null}
                      </td>
                      <td data-label="Subject">
                        <a href={`${BASE}/messages/${m.id}`}>{m.subject || "(no subject)"}</a>
                      </td>
                      <td data-label="Tags">{m.tags.join(", ")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div class="pager">
            {query["cursor"]
              ? (
                <a class="button secondary" href={`${BASE}/activity?${filterQs}`}>
                  Newest
                </a>
              )
              : null}
            {next
              ? (
                <a
                  class="button secondary"
                  href={`${BASE}/activity?${filterQs}${filterQs ? "&" : ""}cursor=${next}`}
                >
                  Older
                </a>
              )
              : null}
          </div>
        </div>
      </Page>,
    );
  });
}
