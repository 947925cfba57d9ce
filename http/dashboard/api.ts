/**
 * The dashboard reads and acts through the very routes of /v1, called in-process with the
 * session's principal in place of a bearer key: the same validation, the same scopes (admin-only
 * routes refuse a credential session), the same views, and no second copy of any of it.
 */
import { Hono } from "hono";
import type { AppEnv, Principal } from "../auth.ts";
import { renderError } from "../errors.ts";

export interface ApiResult {
  status: number;
  ok: boolean;
  // deno-lint-ignore no-explicit-any -- the API's JSON, read by the pages that asked for it.
  json: any;
}

/** `{error:{message,details}}` as one line for a notice. */
export function errorText(res: ApiResult): string {
  const e = res.json?.error;
  if (!e) return `The request failed (${res.status})`;
  const details = Array.isArray(e.details)
    ? e.details.map((d: { path?: string; message?: string }) =>
      d.path ? `${d.path}: ${d.message}` : d.message
    ).join("; ")
    : "";
  return details ? `${e.message}: ${details}` : e.message;
}

export type ApiCall = (
  principal: Principal,
  method: string,
  path: string,
  body?: unknown,
) => Promise<ApiResult>;

type InternalEnv = { Bindings: { principal: Principal } } & AppEnv;

/** `resources` is the router /v1 mounts (http/app.ts resourceRoutes). */
export function inProcessApi(resources: Hono<AppEnv>): ApiCall {
  const api = new Hono<InternalEnv>();
  api.onError(renderError);
  api.use("*", async (c, next) => {
    c.set("principal", c.env.principal);
    await next();
  });
  api.route("/v1", resources);
  return async (principal, method, path, body) => {
    const res = await api.request(`http://dashboard.internal${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    }, { principal });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { error: { code: "internal", message: text.slice(0, 200) } };
    }
    return { status: res.status, ok: res.ok, json };
  };
}
