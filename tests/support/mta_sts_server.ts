/**
 * An HTTPS server on loopback that serves MTA-STS policies (RFC 8461 §3.3) by Host name:
 * https://mta-sts.<domain>/.well-known/mta-sts.txt. The relay reaches it through
 * POSTERN_MTA_STS_PORT and trusts its certificate through POSTERN_CA_FILE.
 *
 * @module
 */
import https from "node:https";

export interface MtaStsServer {
  port: number;
  /** Policy text by domain (without `mta-sts.`); a domain not listed gets 404. Live. */
  policies: Record<string, string>;
  /** Every request's Host header, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startMtaStsServer(
  certificate: { key: string; cert: string },
  policies: Record<string, string> = {},
): Promise<MtaStsServer> {
  const server = https.createServer(certificate, (req, res) => {
    const host = String(req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    state.requests.push(host);
    const domain = host.replace(/^mta-sts\./, "");
    const policy = state.policies[domain];
    if (req.url !== "/.well-known/mta-sts.txt" || policy === undefined) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(policy);
  });
  const state: MtaStsServer = {
    port: 0,
    policies,
    requests: [],
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  state.port = (server.address() as { port: number }).port;
  return state;
}

/** A policy file in RFC 8461 §3.2 form. */
export function stsPolicy(mode: "enforce" | "testing" | "none", mx: string[], maxAge = 86400) {
  return ["version: STSv1", `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`]
    .join("\r\n") + "\r\n";
}
