/**
 * The dashboard at /dashboard (and `/` leads there): server-rendered pages over the API's own
 * routes, readable without JavaScript. Sign-in takes the admin token or an API key; everything
 * after it runs with that principal's scopes. See http/dashboard/session.ts for the session and
 * CSRF rules.
 */
import { Hono } from "hono";
import type { MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { getCookie } from "hono/cookie";
import type { AppEnv } from "../auth.ts";
import { ApiError } from "../errors.ts";
import {
  createDashboardSession,
  deleteDashboardSession,
  switchSessionAccount,
} from "../../core/store/dashboard_sessions.ts";
import { inProcessApi } from "./api.ts";
import { SCRIPT, STYLE } from "./assets.ts";
import { Bare, type Frame, Notice } from "./layout.tsx";
import { OneTimeReveals } from "./reveal.ts";
import {
  BASE,
  clearSessionCookie,
  type DashEnv,
  requireSession,
  SESSION_COOKIE,
  SESSION_TTL_MS,
  setSessionCookie,
  signInCheck,
} from "./session.ts";
import type { PageContext, Revealed } from "./context.ts";
import { SignInPage } from "./pages/sign_in.tsx";
import { overviewPages } from "./pages/overview.tsx";
import { activityPages } from "./pages/activity.tsx";
import { messagePages } from "./pages/message.tsx";
import { queuePages } from "./pages/queue.tsx";
import { credentialPages } from "./pages/credentials.tsx";
import { domainPages } from "./pages/domains.tsx";
import { webhookPages } from "./pages/webhooks.tsx";
import { suppressionPages } from "./pages/suppressions.tsx";

export interface DashboardDeps {
  kv: Deno.Kv;
  adminTokenHash: string;
  defaultAccount: string;
  authLock: MiddlewareHandler;
  resources: Hono<AppEnv>;
  smtp?: { host: string; submissionPort: number; smtpsPort: number };
}

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

export function dashboardApp(deps: DashboardDeps) {
  const root = new Hono();
  root.get("/", (c) => c.redirect(BASE, 302));
  root.get(`${BASE}/`, (c) => c.redirect(BASE, 302));

  const dash = new Hono<DashEnv>();
  // Server-Timing: the server's own handling time, which the dashboard's budget is about.
  dash.use("*", async (c, next) => {
    const start = performance.now();
    await next();
    c.res.headers.set("server-timing", `app;dur=${(performance.now() - start).toFixed(1)}`);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) {
      if (!c.res.headers.has(k)) c.res.headers.set(k, v);
    }
  });
  dash.onError((err, c) => {
    const status = err instanceof ApiError
      ? err.status
      : err instanceof HTTPException
      ? err.status
      : 500;
    const message = err instanceof ApiError
      ? err.message
      : status === 403
      ? "Refused: this form was not sent from a Postern dashboard page (cross-site request)"
      : status === 413
      ? "The form is too large"
      : "Something went wrong on the server";
    if (err instanceof ApiError && err.status === 429) c.header("retry-after", "60");
    return c.html(
      <Bare title="Error">
        <div class="card signin">
          <h1>{status === 403 ? "Not allowed" : status === 404 ? "Not found" : "Error"}</h1>
          <Notice kind="error">{message}</Notice>
          <p>
            <a href={BASE}>Back to the dashboard</a>
          </p>
        </div>
      </Bare>,
      status as 400,
    );
  });
  dash.use("*", csrf());
  dash.use(
    "*",
    bodyLimit({
      maxSize: 256 * 1024,
      onError: () => {
        throw new HTTPException(413);
      },
    }),
  );

  dash.get("/assets/dashboard.css", (c) =>
    c.body(STYLE, 200, {
      "content-type": "text/css; charset=utf-8",
      "cache-control": "public, max-age=3600",
    }));
  dash.get("/assets/dashboard.js", (c) =>
    c.body(SCRIPT, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=3600",
    }));

  const check = signInCheck(deps);
  dash.get("/sign-in", (c) => c.html(<SignInPage next={c.req.query("next") ?? ""} />));
  dash.post("/sign-in", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form["token"] === "string" ? form["token"] : "";
    const next =
      typeof form["next"] === "string" && /^\/dashboard(\/[\w\-/.]*)?$/.test(form["next"])
        ? form["next"]
        : BASE;
    const result = await check(c, token);
    if (!result.ok) {
      return c.html(<SignInPage next={next} error={result.message} />, result.status as 401);
    }
    // A new session for each sign-in; one the browser still held ends here.
    const previous = getCookie(c, SESSION_COOKIE);
    if (previous) await deleteDashboardSession(deps.kv, previous);
    const { token: sessionToken } = await createDashboardSession(deps.kv, {
      kind: result.principal.kind,
      account: result.principal.account,
      credentialId: result.principal.credentialId,
    }, SESSION_TTL_MS);
    setSessionCookie(c, sessionToken);
    return c.redirect(next, 303);
  });
  dash.post("/sign-out", async (c) => {
    // The CSRF origin check has run; signing out needs no session token to be honoured.
    const token = getCookie(c, SESSION_COOKIE);
    if (token) await deleteDashboardSession(deps.kv, token);
    clearSessionCookie(c);
    return c.redirect(`${BASE}/sign-in`, 303);
  });

  dash.use("*", requireSession(deps.kv));
  const api = inProcessApi(deps.resources);
  const ctx: PageContext = {
    api,
    kv: deps.kv,
    reveals: new OneTimeReveals<Revealed>(),
    smtp: deps.smtp ? { ...deps.smtp } : { host: null, submissionPort: 587, smtpsPort: 465 },
    async frame(c): Promise<Frame> {
      const principal = c.get("principal");
      let accounts: Frame["accounts"] = [];
      if (principal.kind === "admin") {
        const res = await api(principal, "GET", "/v1/accounts");
        if (res.ok) accounts = res.json.data;
      }
      return { principal, csrf: c.get("session").csrf, accounts, path: c.req.path };
    },
  };

  dash.post("/account", async (c) => {
    const form = await c.req.parseBody();
    const account = typeof form["account"] === "string" ? form["account"] : "";
    const principal = c.get("principal");
    const known = principal.kind === "admin" &&
      (await api(principal, "GET", "/v1/accounts")).json?.data?.some((a: { id: string }) =>
        a.id === account
      );
    if (!known || !(await switchSessionAccount(deps.kv, c.get("sessionToken"), account))) {
      throw new ApiError(404, "not_found", "account not found");
    }
    return c.redirect(BASE, 303);
  });

  overviewPages(dash, ctx);
  activityPages(dash, ctx);
  messagePages(dash, ctx);
  queuePages(dash, ctx);
  credentialPages(dash, ctx);
  domainPages(dash, ctx);
  webhookPages(dash, ctx);
  suppressionPages(dash, ctx);
  dash.all("*", () => {
    throw new ApiError(404, "not_found", "There is no such page");
  });

  root.route(BASE, dash);
  return root;
}
