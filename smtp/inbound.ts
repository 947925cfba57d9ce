/**
 * The inbound listener for the bounce domain: where the VERP return paths point, so remote
 * servers' delivery status notifications (RFC 3464) and mailbox providers' feedback reports
 * (RFC 5965) reach core/inbound_reports.ts. It accepts mail only for the bounce domain, with no
 * AUTH and a small size limit; it is an untrusted port-25 listener, so smtp-server's pause before
 * the greeting (early-talker detection) stays on here.
 */
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { acceptReport, type ReportDeps } from "../core/inbound_reports.ts";
import { isBounceDomain, parseVerp } from "../core/mail/verp.ts";
import { listenerErrorLogger } from "./listener_errors.ts";
import type { Logger } from "../core/log.ts";
import { replies, type Reply } from "./replies.ts";
import { ListenError, sessionGuards } from "./server.ts";
import { applySmtpServerPatches, primeListener } from "./smtp_server_patches.ts";
import { bareLineEndingRefusal } from "./bare_line_ending.ts";
import { type BareLineEnding, bareLineEndingFinder } from "../core/mail/line_endings.ts";
import type { Config } from "../core/config/schema.ts";

export interface InboundDeps {
  port: number;
  listen: string;
  hostname: string;
  tls: { key: string; cert: string };
  reports: ReportDeps;
  log: Logger;
  /** Session limits (timeouts, error limits, line length) as on the submission ports. */
  config: Config;
  /** @default 2 MiB: reports are small; the original message may be attached whole. */
  maxSize?: number;
}

function smtpError(r: Reply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.responseCode });
}

export async function startInbound(
  deps: InboundDeps,
): Promise<{ close(): Promise<void>; updateTls(tls: { key: string; cert: string }): void }> {
  const verp = deps.reports.verp;
  const maxSize = deps.maxSize ?? 2 * 1024 * 1024;
  applySmtpServerPatches();
  const server = new SMTPServer({
    // An untrusted port-25 listener: keep the early-talker pause, apply every session limit.
    postern: sessionGuards(deps.config, { earlyTalkerPause: true, authOnlyOverTls: false }),
    maxCommandLength: deps.config.smtpMaxLineLength,
    ...(deps.config.smtpMaxConnections > 0 ? { maxClients: deps.config.smtpMaxConnections } : {}),
    name: deps.hostname,
    banner: "Postern reports",
    size: maxSize,
    disabledCommands: ["AUTH"],
    authOptional: true,
    disableReverseLookup: true,
    hideDSN: true,
    key: deps.tls.key,
    cert: deps.tls.cert,
    logger: false,
    socketTimeout: 60_000,
    onRcptTo(address, session, callback) {
      const rcpt = address.address;
      if (!isBounceDomain(rcpt, verp)) return callback(smtpError(replies.relayDenied()));
      // A VERP-shaped address must carry a tag that verifies; other mailboxes at the bounce
      // domain (a feedback-loop address) are accepted and matched by the report's contents.
      if (parseVerp(rcpt, verp) === "forged") {
        deps.log.warn("report.forged", {
          client: session.remoteAddress,
          return_path: rcpt.slice(0, 100),
        });
        return callback(smtpError(replies.unknownBounceAddress()));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Uint8Array[] = [];
      // Reports come from the open internet: smuggling is refused here as on the submission ports.
      const findBare = bareLineEndingFinder();
      let bare: BareLineEnding | null = null;
      stream.on("data", (c: Uint8Array) => {
        bare ??= findBare(c);
        if (bare === null) chunks.push(c); // refused anyway: hold no more of it
      });
      stream.on("end", () => {
        if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
          return callback(smtpError(replies.tooLarge(maxSize)));
        }
        bare ??= findBare(new Uint8Array(0), true);
        if (bare !== null) {
          return callback(
            bareLineEndingRefusal(deps.log, bare, {
              client: session.remoteAddress,
              port: "inbound",
            }),
          );
        }
        const raw = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks) {
          raw.set(c, o);
          o += c.length;
        }
        const rcpts = session.envelope.rcptTo.map((r) => r.address);
        acceptReport(deps.reports, rcpts, raw).then((result) => {
          deps.log.info("inbound.report", {
            client: session.remoteAddress,
            recorded: result.recorded,
            ...(result.ignored ? { ignored: result.ignored } : {}),
          });
          callback(null, replies.reportAccepted());
        }, (err) => {
          deps.log.error("inbound.report_failed", { err });
          callback(smtpError(replies.storeFailed()));
        });
      });
    },
  } as SMTPServerOptions);
  server.on("error", listenerErrorLogger(deps.log, "inbound", "inbound"));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { code?: string }) =>
      reject(
        new ListenError(
          `POSTERN_INBOUND_PORT: cannot listen on ${deps.listen}:${deps.port} (${
            err.code ?? err.message
          }); set POSTERN_INBOUND_PORT to a free port`,
        ),
      );
    server.server.once("error", onError);
    server.listen(deps.port, deps.listen, () => {
      server.server.off("error", onError);
      primeListener(server);
      resolve();
    });
  });
  return {
    close: () => new Promise<void>((r) => server.close(() => r())),
    updateTls: (tls: { key: string; cert: string }) =>
      server.updateSecureContext({ key: tls.key, cert: tls.cert }),
  };
}
