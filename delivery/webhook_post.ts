/**
 * One webhook POST. Instead of fetch(), which resolves the host again through the system
 * resolver, we use node:http(s) with a lookup that returns the address the caller already checked
 * (core/net/public_address.ts): the request reaches exactly that address (no DNS rebinding, and
 * POSTERN_DNS is honoured), while TLS still verifies the certificate against the URL's host name.
 * Redirects are never followed (a 3xx counts as a failure), the whole exchange has one deadline,
 * and at most `maxResponseBytes` of the answer are read.
 */
import http from "node:http";
import https from "node:https";
import { Buffer } from "node:buffer";
import type { LookupFunction } from "node:net";

export interface WebhookPost {
  url: URL;
  /** The checked address to connect to. */
  address: string;
  family: 4 | 6;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** @default 64 KiB */
  maxResponseBytes?: number;
  /** A keep-alive agent owned by the caller (one per endpoint). */
  agent?: http.Agent;
}

export type WebhookPostOutcome =
  | { ok: true; status: number }
  | { ok: false; status: number | null; error: string };

export function postWebhook(p: WebhookPost): Promise<WebhookPostOutcome> {
  const maxBytes = p.maxResponseBytes ?? 64 * 1024;
  const lookup: LookupFunction = (_host, options, callback) => {
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [
        { address: p.address, family: p.family },
      ]);
    } else {
      callback(null, p.address, p.family);
    }
  };
  const secure = p.url.protocol === "https:";
  const body = Buffer.from(p.body, "utf8");
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: WebhookPostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = (secure ? https : http).request({
      host: p.url.hostname.replace(/^\[|\]$/g, ""),
      port: p.url.port ? Number(p.url.port) : secure ? 443 : 80,
      path: p.url.pathname + p.url.search,
      method: "POST",
      lookup,
      ...(p.agent ? { agent: p.agent } : {}),
      headers: {
        "content-type": "application/json",
        "content-length": String(body.length),
        "user-agent": "Postern-Webhooks/1",
        ...p.headers,
      },
    }, (response) => {
      const status = response.statusCode ?? 0;
      let read = 0;
      response.on("data", (chunk: Buffer) => {
        read += chunk.length;
        if (read > maxBytes) response.destroy(); // we only need the status
      });
      const done = () => {
        if (status >= 200 && status < 300) finish({ ok: true, status });
        else {
          finish({
            ok: false,
            status,
            error: status >= 300 && status < 400
              ? `HTTP ${status} (redirects are not followed)`
              : `HTTP ${status}`,
          });
        }
      };
      response.on("end", done);
      response.on("close", done);
      response.on("error", done);
    });
    const timer = setTimeout(() => {
      request.destroy();
      finish({ ok: false, status: null, error: `no answer within ${p.timeoutMs} ms` });
    }, p.timeoutMs);
    request.on("error", (err: Error & { code?: string }) => {
      finish({
        ok: false,
        status: null,
        error: err.code ? `${err.code}: ${err.message}` : err.message,
      });
    });
    request.end(body);
  });
}
