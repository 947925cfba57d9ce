/** The page frame and the small pieces every page uses: navigation, notices, forms, badges. */
import type { Child } from "hono/jsx";
import { raw } from "hono/html";
import type { Principal } from "../auth.ts";
import { BASE } from "./session.ts";

export interface Frame {
  principal: Principal;
  csrf: string;
  /** The admin's accounts, for the account switcher; [] for a credential session. */
  accounts: { id: string; name: string }[];
  path: string;
}

const DOCTYPE = raw("<!DOCTYPE html>");

const NAV: { href: string; label: string; admin?: boolean }[] = [
  { href: "", label: "Overview" },
  { href: "/activity", label: "Activity" },
  { href: "/queue", label: "Queue", admin: true },
  { href: "/credentials", label: "Credentials" },
  { href: "/domains", label: "Domains" },
  { href: "/webhooks", label: "Webhooks", admin: true },
  { href: "/suppressions", label: "Suppressions" },
];

function Head(props: { title: string }) {
  return (
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{props.title} · Postern</title>
      <link rel="stylesheet" href={`${BASE}/assets/dashboard.css`} />
      <script src={`${BASE}/assets/dashboard.js`} defer></script>
    </head>
  );
}

export function Page(props: { frame: Frame; title: string; children?: Child }) {
  const { frame } = props;
  const current = (href: string) =>
    href === "" ? frame.path === BASE : frame.path.startsWith(BASE + href);
  return (
    <Document
      title={props.title}
      header={
        <>
          <nav aria-label="Main">
            {NAV.filter((n) => !n.admin || frame.principal.kind === "admin").map((n) => (
              <a href={BASE + n.href} aria-current={current(n.href) ? "page" : undefined}>
                {n.label}
              </a>
            ))}
          </nav>
          <div class="who">
            {frame.principal.kind === "admin" && frame.accounts.length > 1
              ? (
                <form method="post" action={`${BASE}/account`}>
                  <Csrf token={frame.csrf} />
                  <label for="account-switch" class="switch-label">
                    Account
                  </label>{" "}
                  <select id="account-switch" name="account">
                    {frame.accounts.map((a) => (
                      <option value={a.id} selected={a.id === frame.principal.account}>
                        {a.name}
                      </option>
                    ))}
                  </select>{" "}
                  <button type="submit" class="secondary">Switch</button>
                </form>
              )
              : (
                <span>
                  {frame.principal.kind === "admin" ? "admin" : "API key"} · account{" "}
                  <b>{frame.principal.account}</b>
                </span>
              )}
            <form method="post" action={`${BASE}/sign-out`}>
              <Csrf token={frame.csrf} />
              <button type="submit" class="secondary">Sign out</button>
            </form>
          </div>
        </>
      }
    >
      <h1>{props.title}</h1>
      {props.children}
    </Document>
  );
}

/** A page outside the session (sign-in, errors before one exists). */
export function Bare(props: { title: string; children?: Child }) {
  return <Document title={props.title}>{props.children}</Document>;
}

/** The document every page shares: head, the brand bar (with what a page adds to it), main. */
function Document(props: { title: string; header?: Child; children?: Child }) {
  return (
    <>
      {DOCTYPE}
      <html lang="en">
        <Head title={props.title} />
        <body>
          <header class="top">
            <a class="brand" href={BASE}>Postern</a>
            {props.header}
          </header>
          <main>{props.children}</main>
        </body>
      </html>
    </>
  );
}

export function Csrf(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

export function Notice(props: { kind: "ok" | "error" | "warn"; children?: Child }) {
  return (
    <div class={`notice ${props.kind}`} role={props.kind === "error" ? "alert" : "status"}>
      {props.children}
    </div>
  );
}

/** The `?notice=` / `?error=` a redirect after a form post carries. */
export function Flash(props: { query: Record<string, string> }) {
  return (
    <>
      {props.query["notice"] ? <Notice kind="ok">{props.query["notice"]}</Notice> : null}
      {props.query["error"] ? <Notice kind="error">{props.query["error"]}</Notice> : null}
    </>
  );
}

export function Badge(props: { status: string | null | undefined }) {
  const s = props.status ?? "unknown";
  return <span class={`badge ${s.replace(/[^a-z_]/g, "")}`}>{s}</span>;
}

export function Copy(props: { text: string; label?: string }) {
  return (
    <div class="copy">
      <code>{props.text}</code>
      <button
        type="button"
        class="secondary"
        data-copy={props.text}
        hidden
        aria-label={`Copy ${props.label ?? "value"}`}
      >
        Copy
      </button>
    </div>
  );
}

/** A one-button form posting to `action` (with the session's token). */
export function Action(
  props: {
    frame: Frame;
    action: string;
    label: string;
    kind?: "secondary" | "danger";
    fields?: Record<string, string>;
  },
) {
  return (
    <form method="post" action={props.action} class="inline">
      <Csrf token={props.frame.csrf} />
      {Object.entries(props.fields ?? {}).map(([k, v]) => (
        <input
          type="hidden"
          name={k}
          value={v}
        />
      ))}
      <button type="submit" class={props.kind}>{props.label}</button>
    </form>
  );
}

/** ISO time as "2026-12-05 07:50:12 UTC"; "—" for none. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC";
}

export function TextField(
  props: {
    name: string;
    label: string;
    value?: string | undefined;
    type?: string;
    placeholder?: string;
    required?: boolean;
    hint?: string;
  },
) {
  const id = `f-${props.name}`;
  return (
    <div>
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={props.type ?? "text"}
        value={props.value ?? ""}
        placeholder={props.placeholder}
        required={props.required}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
      />
      {props.hint ? <div id={`${id}-hint`} class="muted small">{props.hint}</div> : null}
    </div>
  );
}
