/**
 * /v1/tls-reports (admin only: outbound TLS is the node's, not an account's): per recipient
 * domain and UTC day, the policy sessions were held to and how many succeeded or failed with
 * which RFC 8460 result type. POST /send sends a finished day's aggregate reports now, as the
 * hourly sender would.
 */
import { Hono } from "hono";
import { z } from "zod";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { parseQuery } from "./validate.ts";
import { readTlsReports, tlsReportDays } from "../core/store/tls_reports.ts";
import { utcDate } from "../core/policy/tls_report.ts";
import type { TlsReportControl } from "../core/tls_report_control.ts";

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD");

export const TlsReportsQuery = z.object({
  day: day.optional().describe("UTC day; default: every day with data"),
  domain: z.string().trim().toLowerCase().min(1).max(253).optional(),
}).strict();

export const SendTlsReports = z.object({
  day: day.optional().describe("default: yesterday (UTC)"),
}).strict();

export function tlsReportsApi(
  deps: { kv: Deno.Kv; sender: () => TlsReportControl | null; now?: () => number },
) {
  const app = new Hono<AppEnv>();
  app.use("*", requireAdmin());
  const now = deps.now ?? Date.now;

  app.get("/", async (c) => {
    const q = parseQuery(c, TlsReportsQuery);
    const days = q.day ? [q.day] : await tlsReportDays(deps.kv);
    const data = [];
    for (const d of days) {
      for (const r of await readTlsReports(deps.kv, d, q.domain)) {
        data.push({
          day: r.day,
          domain: r.domain,
          policies: r.policies.map((p) => ({
            policy_type: p.policy.type,
            policy_string: p.policy.strings,
            mx_host: p.policy.mxHosts,
            successful_sessions: p.success,
            failed_sessions: p.failures.reduce((n, f) => n + f.count, 0),
            failures: p.failures.map((f) => ({
              result_type: f.result,
              receiving_mx_hostname: f.mx,
              count: f.count,
            })),
          })),
        });
      }
    }
    return c.json({ data });
  });

  app.post("/send", async (c) => {
    const sender = deps.sender();
    if (!sender) throw errors.unavailable("This node runs no delivery worker");
    let body: unknown = {};
    try {
      const text = await c.req.text();
      body = text ? JSON.parse(text) : {};
    } catch {
      throw errors.invalid("The body is not JSON");
    }
    const parsed = SendTlsReports.safeParse(body);
    if (!parsed.success) throw errors.invalid("Invalid body", parsed.error.issues);
    const target = parsed.data.day ?? utcDate(now() - 86_400_000);
    return c.json({ day: target, data: await sender.sendDay(target) });
  });

  return app;
}
