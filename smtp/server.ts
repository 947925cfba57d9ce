/**
 * smtp-server adapter: submission on 587 (STARTTLS) and 465 (implicit TLS, RFC 8314). Policy
 * arrives as smtp-server callbacks; mail goes to core/intake. Reply codes come from replies.ts.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import type { Config } from "../core/config/schema.ts";
import { accept, type IntakeDeps } from "../core/intake.ts";
import { checkRelayAddress, checkSenderAddress } from "../core/mail/address.ts";
import { networkMatcher } from "../core/net/cidr.ts";
import {
  type Credential,
  getCredential,
  touchCredential,
  verifyApiKey,
  verifyLogin,
} from "../core/store/credentials.ts";
import type { Logger } from "../core/log.ts";
import { replies, type Reply } from "./replies.ts";
import { applySmtpServerPatches } from "./smtp_server_patches.ts";

export interface SmtpDeps {
  config: Config;
  hostname: string;
  intake: IntakeDeps;
  tls: { key: string; cert: string };
  log: Logger;
  /** The account trusted-network relaying is charged to. */
  trustedAccount: string;
}

interface SessionUser {
  credentialId: string;
  account: string;
  username: string;
}

function smtpError(r: Reply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.responseCode });
}

function protocolOf(session: SMTPServerSession): string {
  // RFC 3848 transmission types
  const s = session.secure ? "S" : "";
  const a = session.user ? "A" : "";
  return `ESMTP${s}${a}`;
}

export interface SmtpListeners {
  /** Stop accepting: new sessions get 421 4.3.2; resolves when open transactions finished. */
  drain(graceMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSmtp(deps: SmtpDeps): Promise<SmtpListeners> {
  applySmtpServerPatches();
  const { config, log } = deps;
  const isTrusted = networkMatcher(config.trustedNetworks);
  const kv = deps.intake.kv;
  let draining = false;
  let openTransactions = 0;
  let transactionsDone: (() => void) | null = null;

  async function checkCredential(user: SessionUser): Promise<Credential | null> {
    const c = await getCredential(kv, user.credentialId);
    return c && c.revokedAt === null ? c : null;
  }

  const base: SMTPServerOptions & { postern: unknown } = {
    postern: { earlyTalkerPause: false, authOnlyOverTls: true },
    name: deps.hostname,
    banner: "Postern ESMTP ready",
    size: config.maxMessageSize,
    authMethods: ["PLAIN", "LOGIN", "XOAUTH2"],
    authOptional: true, // enforced in onMailFrom so trusted networks may relay without AUTH
    allowInsecureAuth: false,
    disableReverseLookup: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    key: deps.tls.key,
    cert: deps.tls.cert,
    minVersion: "TLSv1.2",
    logger: false,
    socketTimeout: 5 * 60_000,
    closeTimeout: 1000,

    onConnect(_session, callback) {
      if (draining) return callback(smtpError(replies.shuttingDown(deps.hostname)));
      callback();
    },

    onAuth(auth, session, callback) {
      const isOauth = auth.method === "XOAUTH2";
      const username = auth.username ?? "";
      const secret = (isOauth ? auth.accessToken : auth.password) ?? "";
      const check = isOauth && !username.startsWith("cr_")
        ? verifyApiKey(kv, secret)
        : verifyLogin(kv, username, secret);
      check.then((credential) => {
        if (!credential) {
          log.warn("smtp.auth_failed", {
            client: session.remoteAddress,
            method: auth.method,
            username: username.slice(0, 64),
          });
          return callback(smtpError(replies.authFailed()));
        }
        touchCredential(kv, credential).catch(() => {});
        const user: SessionUser = {
          credentialId: credential.id,
          account: credential.account,
          username: credential.username,
        };
        callback(null, { user: user as unknown as string });
      }, (err) => {
        log.error("smtp.auth_error", { err });
        callback(smtpError(replies.authTemporary()));
      });
    },

    onMailFrom(address, session, callback) {
      const user = session.user as unknown as SessionUser | undefined;
      if (!user && !isTrusted(session.remoteAddress)) {
        return callback(smtpError(replies.authRequired()));
      }
      const problem = checkSenderAddress(address.address);
      if (problem) return callback(smtpError(replies.badSender(problem)));
      if (!user) return callback();
      // Revocation reaches open sessions at their next transaction.
      checkCredential(user).then(
        (c) => callback(c ? undefined : smtpError(replies.credentialRevoked())),
        () => callback(smtpError(replies.authTemporary())),
      );
    },

    onRcptTo(address, _session, callback) {
      const problem = checkRelayAddress(address.address);
      if (problem === "bad_domain") return callback(smtpError(replies.badRecipientDomain()));
      if (problem) return callback(smtpError(replies.badRecipient(problem)));
      callback();
    },

    onData(stream, session, callback) {
      const user = session.user as unknown as SessionUser | undefined;
      const envelope = session.envelope;
      const mailFrom = envelope.mailFrom ? envelope.mailFrom.address : "";
      const recipients = envelope.rcptTo.map((r) => r.address);
      const started = performance.now();
      openTransactions++;
      accept(deps.intake, {
        account: user?.account ?? deps.trustedAccount,
        credentialId: user?.credentialId ?? null,
        mailFrom,
        recipients,
        clientAddress: session.remoteAddress,
        heloName: session.hostNameAppearsAs || "unknown",
        protocol: protocolOf(session),
        via: "smtp",
        body: stream as AsyncIterable<Uint8Array>,
      }).then((result) => {
        const fields = {
          client: session.remoteAddress,
          credential: user?.credentialId ?? null,
          from: mailFrom,
          rcpts: recipients.length,
          ms: Math.round(performance.now() - started),
        };
        if (result.ok) {
          log.info("smtp.accepted", { msg: result.id, size: result.size, ...fields });
          callback(null, replies.queued(result.id));
        } else if (result.reason === "too_large") {
          log.info("smtp.rejected", { reason: "too_large", ...fields });
          callback(smtpError(replies.tooLarge(result.limit)));
        } else {
          log.error("smtp.store_failed", { error: result.error, ...fields });
          callback(smtpError(replies.storeFailed()));
        }
      }, (err) => {
        log.error("smtp.store_failed", { err });
        callback(smtpError(replies.storeFailed()));
      }).finally(() => {
        openTransactions--;
        if (openTransactions === 0) transactionsDone?.();
      });
    },
  };

  const submission = new SMTPServer({ ...base, secure: false } as SMTPServerOptions);
  const smtps = new SMTPServer({ ...base, secure: true } as SMTPServerOptions);
  for (const [server, name] of [[submission, "submission"], [smtps, "smtps"]] as const) {
    server.on("error", (err: Error) => log.warn("smtp.error", { listener: name, err }));
  }
  await listen(submission, config.smtpPort, config.listen, "POSTERN_SMTP_PORT");
  await listen(smtps, config.smtpsPort, config.listen, "POSTERN_SMTPS_PORT");

  return {
    async drain(graceMs) {
      draining = true;
      if (openTransactions === 0) return;
      await Promise.race([
        new Promise<void>((r) => (transactionsDone = r)),
        new Promise<void>((r) => setTimeout(r, graceMs)),
      ]);
    },
    async close() {
      await Promise.all(
        [submission, smtps].map((s) => new Promise<void>((r) => s.close(() => r()))),
      );
    },
  };
}

/** Port in use or not allowed: one clear line naming the setting to change. */
export class ListenError extends Error {
  override name = "ListenError";
}

function listen(server: SMTPServer, port: number, host: string, setting: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error & { code?: string }) => {
      reject(
        new ListenError(
          `${setting}: cannot listen on ${host}:${port} (${err.code ?? err.message}); ` +
            `set ${setting} to a free port`,
        ),
      );
    };
    server.server.once("error", onError);
    server.listen(port, host, () => {
      server.server.off("error", onError);
      resolve();
    });
  });
}

export function listeningPort(server: SMTPServer): number {
  const addr = server.server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}
