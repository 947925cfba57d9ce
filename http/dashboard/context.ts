/** What every dashboard page handler is given. */
import type { Context } from "hono";
import type { ApiCall } from "./api.ts";
import type { DashEnv } from "./session.ts";
import type { Frame } from "./layout.tsx";
import type { OneTimeReveals } from "./reveal.ts";

/** A secret to show once, and what it belongs to. */
export interface Revealed {
  kind: "credential" | "webhook";
  id: string;
  secret: string;
  username?: string;
}

export interface PageContext {
  api: ApiCall;
  kv: Deno.Kv;
  reveals: OneTimeReveals<Revealed>;
  smtp: { host: string | null; submissionPort: number; smtpsPort: number };
  frame(c: Context<DashEnv>): Promise<Frame>;
}

export type DashContext = Context<DashEnv>;

/** Redirect after a form post, with a one-line notice or error for the next page. */
export function back(c: DashContext, to: string, message: { notice?: string; error?: string }) {
  const q = new URLSearchParams();
  if (message.notice) q.set("notice", message.notice);
  if (message.error) q.set("error", message.error);
  const qs = q.toString();
  return c.redirect(qs ? `${to}${to.includes("?") ? "&" : "?"}${qs}` : to, 303);
}

/** A form field as a trimmed string ("" when absent or a file). */
export function field(form: Record<string, unknown>, name: string): string {
  const v = form[name];
  return typeof v === "string" ? v.trim() : "";
}

/** "a, b\nc" → ["a","b","c"]. */
export function listField(form: Record<string, unknown>, name: string): string[] {
  return field(form, name).split(/[\s,]+/).filter(Boolean);
}
