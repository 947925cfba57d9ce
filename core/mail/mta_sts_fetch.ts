/**
 * Fetching a domain's MTA-STS policy (RFC 8461 §3.3): GET
 * https://mta-sts.<domain>/.well-known/mta-sts.txt with a verified certificate for that name,
 * no redirects, at most 64 KiB, within a deadline. The name is resolved through Postern's own
 * resolver (POSTERN_DNS) and the connection goes to the address with the name as SNI and Host,
 * so no lookup ever bypasses the configured name server.
 *
 * @module
 */
import https from "node:https";
import { parseStsPolicy, type StsPolicy } from "../policy/mta_sts.ts";

export interface StsFetchOptions {
  /** A/AAAA lookup of mta-sts.<domain> through the configured resolver. */
  addresses(name: string): Promise<string[]>;
  /** @default 443 (POSTERN_MTA_STS_PORT) */
  port: number;
  /** Trusted roots (POSTERN_CA_FILE); unset: the system's. */
  ca?: string[] | undefined;
  /** @default 10000 */
  timeoutMs?: number;
}

const MAX_BYTES = 64 * 1024;

export type StsFetchResult = { ok: true; policy: StsPolicy } | { ok: false; reason: string };

export async function fetchStsPolicy(
  domain: string,
  options: StsFetchOptions,
): Promise<StsFetchResult> {
  const host = `mta-sts.${domain}`;
  let addresses: string[];
  try {
    addresses = await options.addresses(host);
  } catch (err) {
    return { ok: false, reason: `${host} did not resolve: ${(err as Error).message}` };
  }
  if (addresses.length === 0) return { ok: false, reason: `${host} has no address` };
  let last = "";
  for (const address of addresses) {
    const res = await get(address, host, options);
    if (res.ok) {
      const parsed = parseStsPolicy(res.body);
      return parsed.ok ? parsed : { ok: false, reason: `policy of ${domain}: ${parsed.reason}` };
    }
    last = res.reason;
  }
  return { ok: false, reason: last };
}

function get(
  address: string,
  host: string,
  options: StsFetchOptions,
): Promise<{ ok: true; body: string } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const done = (r: { ok: true; body: string } | { ok: false; reason: string }) => {
      clearTimeout(timer);
      resolve(r);
    };
    const req = https.request({
      host: address,
      port: options.port,
      path: "/.well-known/mta-sts.txt",
      method: "GET",
      servername: host,
      headers: { host, "user-agent": "Postern MTA-STS" },
      rejectUnauthorized: true,
      ...(options.ca ? { ca: options.ca } : {}),
      agent: false,
    }, (res) => {
      // RFC 8461 §3.3: only a 200 counts; redirects are not followed.
      if (res.statusCode !== 200) {
        res.resume();
        return done({ ok: false, reason: `https://${host}/ answered HTTP ${res.statusCode}` });
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      res.on("data", (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > MAX_BYTES) {
          req.destroy();
          return done({ ok: false, reason: `policy of ${host} is over 64 KiB` });
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
        done({ ok: true, body: new TextDecoder().decode(all) });
      });
      res.on("error", (err) => done({ ok: false, reason: `${host}: ${err.message}` }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ ok: false, reason: `${host} did not answer in time` });
    }, options.timeoutMs ?? 10_000);
    req.on("error", (err) => done({ ok: false, reason: `${host}: ${err.message}` }));
    req.end();
  });
}
