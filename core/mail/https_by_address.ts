/**
 * One HTTPS request to an address we resolved ourselves (through POSTERN_DNS), with the host
 * name as SNI and Host and its certificate verified for that name: so MTA-STS fetches and TLS
 * report POSTs never look a name up behind the configured resolver's back.
 *
 * @module
 */
import https from "node:https";

export interface HttpsByAddress {
  address: string;
  host: string;
  port: number;
  path: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Trusted roots (POSTERN_CA_FILE); unset: the system's. */
  ca?: string[] | undefined;
  /** @default 10000 */
  timeoutMs?: number;
  /** Bodies longer than this are refused. @default 65536 */
  maxBytes?: number;
}

export type HttpsResult =
  | { ok: true; status: number; body: string }
  | { ok: false; reason: string };

export function httpsByAddress(r: HttpsByAddress): Promise<HttpsResult> {
  const maxBytes = r.maxBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: HttpsResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const req = https.request({
      host: r.address,
      port: r.port,
      path: r.path,
      method: r.method ?? "GET",
      servername: r.host,
      headers: {
        // RFC 9110 §7.2: a port other than the scheme's default is part of Host, so a virtual
        // host on, say, a report receiver's own port still sees its full authority.
        host: r.port === 443 ? r.host : `${r.host}:${r.port}`,
        "user-agent": "Postern",
        ...(r.body ? { "content-length": String(r.body.length) } : {}),
        ...r.headers,
      },
      rejectUnauthorized: true,
      ...(r.ca ? { ca: r.ca } : {}),
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      let size = 0;
      res.on("data", (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > maxBytes) {
          req.destroy();
          return done({
            ok: false,
            reason: `https://${r.host}${r.path} sent over ${maxBytes} bytes`,
          });
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        const all = new Uint8Array(size);
        let at = 0;
        for (const c of chunks) {
          all.set(c, at);
          at += c.length;
        }
        done({ ok: true, status: res.statusCode ?? 0, body: new TextDecoder().decode(all) });
      });
      res.on("error", (err) => done({ ok: false, reason: `${r.host}: ${err.message}` }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ ok: false, reason: `${r.host} did not answer in time` });
    }, r.timeoutMs ?? 10_000);
    req.on("error", (err) => done({ ok: false, reason: `${r.host}: ${err.message}` }));
    req.end(r.body);
  });
}
