/**
 * smtp-server adapter: submission on 587 (STARTTLS) and 465 (implicit TLS, RFC 8314). Policy
 * arrives as smtp-server callbacks; mail goes to core/intake. Reply codes come from replies.ts.
 */
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerOptions,
  type SMTPServerSession,
} from "smtp-server";
import type { Config } from "../core/config/schema.ts";
import {
  accept,
  INTAKE_WORKING_BYTES,
  type IntakeDeps,
  type IntakeRejection,
} from "../core/intake.ts";
import type { MemoryBudget, MemoryHold } from "../core/policy/memory_budget.ts";
import type { InFlow, InFlowTicket } from "../core/in_flow.ts";
import { checkRelayAddress, checkSenderAddress } from "../core/mail/address.ts";
import { networkMatcher } from "../core/net/cidr.ts";
import {
  allowsAddress,
  loginKeys,
  touchCredential,
  verifyApiKey,
  verifyLogin,
} from "../core/store/credentials.ts";
import {
  checkSendScope,
  loadSendScope,
  type ScopeDeps,
  type SendScope,
} from "../core/send_scope.ts";
import type { Logger } from "../core/log.ts";
import { metrics } from "../core/metrics.ts";
import type { SendLimits } from "../core/send_limits.ts";
import { intakeRefused, replies, type Reply, scopeRefused } from "./replies.ts";
import { usernameForLog } from "../core/auth/secrets.ts";
import { countBareLineEnding } from "./bare_line_ending.ts";
import { type ByReason, byReason } from "../core/by_reason.ts";
import { listenerErrorLogger } from "./listener_errors.ts";
import { messageChunks } from "./message_chunks.ts";
import {
  applySmtpServerPatches,
  type PosternServerOptions,
  primeListener,
} from "./smtp_server_patches.ts";
import { ClientConnections } from "../core/policy/client_limits.ts";
import { AuthLockout, type LockCheck } from "../core/auth_lockout.ts";
import type { SubmissionFault } from "../core/policy/sandbox.ts";
import {
  faultAtData,
  faultAtRcpt,
  late,
  refuseAfterData,
  sandboxReplies,
  type SandboxSubmission,
} from "./sandbox_faults.ts";

export interface SmtpDeps {
  config: Config;
  hostname: string;
  intake: IntakeDeps;
  tls: { key: string; cert: string };
  log: Logger;
  /** The account trusted-network relaying is charged to. */
  trustedAccount: string;
  /** Credentials' rate_limit and daily_quota, asked at MAIL FROM and RCPT TO. */
  limits: SendLimits;
  /** Message bytes held in memory, shared with the HTTP side; absent = unlimited. */
  memory?: MemoryBudget;
  /** Intake flow control: MAIL FROM is answered once this lets the transaction go on. */
  inFlow?: InFlow;
  /** Submission faults at the simulator domain (smtp/sandbox_faults.ts). */
  sandbox?: SandboxSubmission;
}

interface SessionUser {
  credentialId: string;
  account: string;
  username: string;
}

/** An address as the client wrote it (smtp_server_patches.ts keeps it), else as parsed. */
function writtenAddress(address: { address: string }): string {
  return (address as { written?: string }).written ?? address.address;
}

/** RFC 6531 §3.4: a non-ASCII address is refused unless MAIL FROM carried SMTPUTF8. */
function needsSmtputf8(address: { address: string }, session: SMTPServerSession): boolean {
  return /[^\x00-\x7f]/.test(writtenAddress(address)) &&
    (session.envelope as { smtpUtf8?: boolean }).smtpUtf8 !== true;
}

/** What a refusal at the end of DATA is logged with; `aborted`: the client left mid-DATA. */
type LogFields = Record<string, unknown> & { aborted: boolean };

/** How each refusal at the end of DATA is logged (and counted), beside the reply it got. */
const INTAKE_LOGS: ByReason<IntakeRejection, void, [Logger, Reply, LogFields]> = {
  too_large: (_r, log, _reply, { aborted: _, ...f }) =>
    log.info("smtp.rejected", { reason: "too_large", ...f }),
  header_too_large: (_r, log, _reply, { aborted: _, ...f }) =>
    log.info("smtp.rejected", { reason: "header_too_large", ...f }),
  scope: (r, log, reply, { aborted: _, ...f }) =>
    log.info("smtp.rejected", {
      // The From or Sender field named a domain the scope refuses.
      reason: r.refusal.reason === "sender_not_allowed" ? "from_not_allowed" : r.refusal.reason,
      reply: `${reply.responseCode} ${reply.message}`,
      ...f,
    }),
  bare_line_ending: (r, log, _reply, { aborted: _, ...f }) => countBareLineEnding(log, r.found, f),
  content_rejected: (r, log, _reply, { aborted: _, ...f }) =>
    log.info("smtp.rejected", { reason: "content", message: r.message, ...f }),
  content_unavailable: (_r, log, _reply, { aborted: _, ...f }) =>
    log.info("smtp.rejected", { reason: "content_unavailable", ...f }),
  memory_busy: (_r, log, _reply, { aborted: _, ...f }) => {
    metrics.limitRefusals.inc({ limit: "memory_budget" });
    log.warn("smtp.rejected", { reason: "memory_budget", ...f });
  },
  signing_unavailable: (_r, log, _reply, { aborted: _, ...f }) =>
    log.warn("smtp.rejected", { reason: "signing_unavailable", ...f }),
  // The client left (or was cut off by a deadline) before the end of DATA, or the store failed.
  store_failed: (r, log, _reply, { aborted, ...f }) =>
    aborted
      ? log.info("smtp.aborted", { error: r.error, ...f })
      : log.error("smtp.store_failed", { error: r.error, ...f }),
};

function smtpError(r: Reply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.responseCode });
}

function protocolOf(session: SMTPServerSession): string {
  // RFC 3848 transmission types
  const s = session.secure ? "S" : "";
  const a = session.user ? "A" : "";
  return `ESMTP${s}${a}`;
}

/** Most answers asked again and again about a few addresses, for up to this many. */
const REMEMBERED_ADDRESSES = 1024;

/**
 * A check of a client address, remembered: every session asks whether its client is trusted
 * (at the connection count and again at MAIL FROM), and each ask parsed the address anew.
 */
function rememberedByAddress(check: (address: string) => boolean): (address: string) => boolean {
  const known = new Map<string, boolean>();
  return (address) => {
    let answer = known.get(address);
    if (answer === undefined) {
      if (known.size >= REMEMBERED_ADDRESSES) known.clear();
      answer = check(address);
      known.set(address, answer);
    }
    return answer;
  };
}

export interface SmtpListeners {
  /**
   * Stop accepting: new sessions and new transactions get 421 4.3.2; resolves when every
   * transaction already past MAIL FROM has finished (or left), or after `graceMs`.
   */
  drain(graceMs: number): Promise<void>;
  /** New sessions, on both listeners, present this certificate and key. */
  updateTls(tls: { key: string; cert: string }): void;
  close(): Promise<void>;
  /** The ports the listeners are bound to (useful when the config asked for port 0). */
  ports(): { submission: number; smtps: number };
}

/**
 * The session guards of core/config/limits.ts as smtp_server_patches.ts applies them; shared by
 * the submission listeners and the inbound report listener.
 */
export function sessionGuards(
  config: Config,
  mode: { earlyTalkerPause: boolean; authOnlyOverTls: boolean },
): PosternServerOptions {
  return {
    ...mode,
    refuseSourceRoutes: true,
    tlsSocketsPerClient: config.smtpClientConnectionLimit,
    limits: {
      sessionTimeoutMs: config.smtpSessionTimeout,
      idleTimeoutMs: config.smtpIdleTimeout,
      minDataRate: config.smtpMinDataRate,
      tlsHandshakeTimeoutMs: config.smtpTlsHandshakeTimeout,
      softErrorLimit: config.smtpSoftErrorLimit,
      hardErrorLimit: config.smtpHardErrorLimit,
      errorSleepMs: config.smtpErrorSleep,
      recipientOvershoot: config.maxRecipients,
    },
  };
}

export async function startSmtp(deps: SmtpDeps): Promise<SmtpListeners> {
  applySmtpServerPatches();
  const { config, log } = deps;
  const isTrusted = rememberedByAddress(networkMatcher(config.trustedNetworks));
  const kv = deps.intake.kv;
  let draining = false;
  /** Open sessions, so a drain can wait for those with a transaction under way. */
  const sessions = new Map<string, SMTPServerSession>();
  let openTransactions = 0;
  // Abuse limits (core/config/limits.ts), per node like the credential rate limits.
  const clients = new ClientConnections({
    perClient: config.smtpClientConnectionLimit,
    trustedPerClient: config.trustedMaxConnections,
    isTrusted,
    total: config.smtpMaxConnections,
    rate: config.smtpClientConnectionRate ?? null,
    now: Date.now,
  });
  /** Each open transaction's hold on the memory budget, by session id, from MAIL FROM on. */
  const holds = new Map<string, MemoryHold>();
  /** Each open transaction's place in intake's flow control, by session id, likewise. */
  const flowTickets = new Map<string, InFlowTicket>();
  const releaseHold = (sessionId: string) => {
    holds.get(sessionId)?.release();
    holds.delete(sessionId);
    flowTickets.get(sessionId)?.release();
    flowTickets.delete(sessionId);
  };
  /** Sessions counted by `clients`, by session id, so each is released exactly once. */
  const counted = new Map<string, string>();
  // Counted on this node and in the store: the lockout holds on every node sharing it.
  const authFailures = new AuthLockout({
    limit: config.authFailureLimit,
    coolDownMs: config.authLockout,
    delayMs: config.authFailureDelay,
    now: Date.now,
    kv,
    scope: "smtp",
    onStoreError: (err) => log.warn("smtp.auth_store_failed", { err }),
  });

  /** Each open transaction's scope, by session id: loaded at MAIL FROM, used up to the end of DATA. */
  const scopes = new Map<string, SendScope>();

  /**
   * The scope at MAIL FROM, re-read every transaction so revocation and PATCHed scopes reach
   * open sessions: source address, envelope sender, room in the quota for one recipient, rate.
   * Trusted-network sessions have no credential but keep their account's rules.
   */
  async function refuseTransaction(
    session: SMTPServerSession,
    user: SessionUser | undefined,
    mailFrom: string,
  ): Promise<Reply | null> {
    const scope = await loadSendScope(
      kv,
      user?.account ?? deps.trustedAccount,
      user?.credentialId ?? null,
      mailFrom,
    );
    const refusal = await checkSendScope({ kv, limits: deps.limits }, scope, {
      client: session.remoteAddress,
      envelopeSender: mailFrom,
      recipients: 1,
      takeRate: true,
    });
    if (refusal) return scopeRefused(refusal);
    scopes.set(session.id, scope!);
    return null;
  }

  /** The credential's `sandbox_submission` fault, as of this transaction's MAIL FROM. */
  function sandboxFaultOf(session: SMTPServerSession): SubmissionFault | null {
    return scopes.get(session.id)?.credential?.sandboxSubmission ?? null;
  }

  /**
   * One RCPT TO: the address, then the scope its transaction's MAIL FROM loaded. Past the
   * recipient limit the reply is 452 and the client sends the rest in another transaction
   * (RFC 5321 §4.5.3.1.8); a repeated recipient replaces its entry, so it never counts twice.
   */
  async function recipientRefusal(
    address: SMTPServerAddress,
    session: SMTPServerSession,
  ): Promise<Reply | null> {
    const rcpts = session.envelope.rcptTo;
    const lower = address.address.toLowerCase();
    const repeated = rcpts.some((r) => r.address.toLowerCase() === lower);
    // Always there: smtp-server answers 503 itself to a RCPT TO without an accepted MAIL FROM.
    const scope = scopes.get(session.id);
    const check = async (deps: ScopeDeps, recipients: number) =>
      scope ? await checkSendScope(deps, scope, { recipients }) : null;
    if (!repeated) {
      const over = await check({ kv, maxRecipients: config.maxRecipients }, rcpts.length + 1);
      if (over) return scopeRefused(over);
    }
    if (needsSmtputf8(address, session)) return replies.utf8WithoutSmtputf8();
    const problem = checkRelayAddress(address.address);
    if (problem === "bad_domain") return replies.badRecipientDomain();
    if (problem) return replies.badRecipient(problem);
    const fault = faultAtRcpt(deps.sandbox, address.address, sandboxFaultOf(session));
    if (fault) return fault;
    if (repeated) return null;
    // daily_quota counts recipients: this one must fit with those already accepted.
    const refusal = await check({ kv, limits: deps.limits }, rcpts.length + 1);
    if (!refusal) return null;
    return refusal.reason === "quota" ? replies.recipientOverQuota() : scopeRefused(refusal);
  }

  type AuthArgs = Parameters<NonNullable<SMTPServerOptions["onAuth"]>>;

  /** An XOAUTH2 token that is an API key: the credential id is in the key, not the username. */
  const isApiKey = (auth: AuthArgs[0]) =>
    auth.method === "XOAUTH2" && !(auth.username ?? "").startsWith("cr_");

  /** The rest of AUTH once the lockouts are read: refuse unheard, or check the secret. */
  function authenticate(
    auth: AuthArgs[0],
    session: AuthArgs[1],
    callback: AuthArgs[2],
    { started, seen }: { started: number; seen: LockCheck },
  ) {
    const { lock } = seen;
    const isOauth = auth.method === "XOAUTH2";
    const username = auth.username ?? "";
    const client = session.remoteAddress;
    if (lock !== null) {
      metrics.limitRefusals.inc({ limit: `auth_${lock}` });
      log.warn("smtp.auth_locked", { client, lock, ...usernameForLog(username) });
      return callback(smtpError(
        lock === "client" ? replies.authClientLocked(deps.hostname) : replies.authUserLocked(),
      ));
    }
    // Every failure is answered after the same delay, counted from the start of the attempt,
    // so neither the reply nor its timing tells an unknown user from a wrong password.
    const refuse = (r: Reply) => {
      authFailures.fail(client, username).then((delay) => {
        const wait = delay - (performance.now() - started);
        setTimeout(() => callback(smtpError(r)), Math.max(0, wait));
      });
    };
    const secret = (isOauth ? auth.accessToken : auth.password) ?? "";
    const check = isApiKey(auth)
      ? verifyApiKey(kv, secret)
      : verifyLogin(kv, username, secret, Date.now(), seen.also);
    check.then((credential) => {
      if (!credential) {
        metrics.authFailures.inc({ protocol: "smtp" });
        log.warn("smtp.auth_failed", {
          client: session.remoteAddress,
          method: auth.method,
          ...usernameForLog(username),
        });
        return refuse(replies.authFailed());
      }
      if (!allowsAddress(credential, session.remoteAddress)) {
        log.warn("smtp.auth_refused", {
          client: session.remoteAddress,
          credential: credential.id,
          reason: "allowed_ips",
        });
        return refuse(replies.addressNotAllowed());
      }
      authFailures.succeed(username, seen);
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
  }

  const postern: PosternServerOptions = {
    ...sessionGuards(config, { earlyTalkerPause: false, authOnlyOverTls: true }),
    trustedSockets: { perClient: config.trustedMaxConnections, isTrusted },
  };
  const base: SMTPServerOptions & { postern: PosternServerOptions } = {
    postern,
    name: deps.hostname,
    // smtp-server writes "<name> ESMTP <banner>": the word is said once.
    banner: "Postern ready",
    size: config.maxMessageSize,
    authMethods: ["PLAIN", "LOGIN", "XOAUTH2"],
    authOptional: true, // enforced in onMailFrom so trusted networks may relay without AUTH
    allowInsecureAuth: false,
    disableReverseLookup: true,
    // One address check, ours (core/mail/address.ts, RFC 5321 §4.5.3.1 limits in octets):
    // smtp-server's strict mode caps an address at 253 octets where the RFC allows 254, and
    // would leave two checkers to disagree. It still refuses control characters and extra @.
    lenientAddressParsing: true,
    // smtp-server hides ENHANCEDSTATUSCODES by default; our replies carry RFC 3463 codes.
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    key: deps.tls.key,
    cert: deps.tls.cert,
    minVersion: "TLSv1.2",
    logger: false,
    socketTimeout: config.smtpIdleTimeout,
    maxCommandLength: config.smtpMaxLineLength,
    // Per listener; also bounds implicit-TLS handshakes in progress. The total over both
    // listeners is counted in onConnect.
    ...(config.smtpMaxConnections > 0 ? { maxClients: config.smtpMaxConnections } : {}),
    // Closing comes after the drain: a session still open then has no transaction to finish,
    // so it hears 421 at once instead of holding the stop a second.
    closeTimeout: 1,

    onConnect(session, callback) {
      metrics.smtpSessions.inc();
      if (draining) return callback(smtpError(replies.shuttingDown(deps.hostname)));
      const verdict = clients.open(session.remoteAddress);
      if (!verdict.ok) {
        metrics.limitRefusals.inc({ limit: verdict.reason });
        log.warn("smtp.refused", { client: session.remoteAddress, reason: verdict.reason });
        return callback(smtpError(
          verdict.reason === "total"
            ? replies.serverBusy(deps.hostname)
            : verdict.reason === "client_rate"
            ? replies.connectionRateExceeded(deps.hostname)
            : replies.tooManyConnectionsFromClient(deps.hostname),
        ));
      }
      counted.set(session.id, session.remoteAddress);
      sessions.set(session.id, session);
      callback();
    },

    onClose(session) {
      sessions.delete(session.id);
      releaseHold(session.id);
      scopes.delete(session.id);
      const address = counted.get(session.id);
      if (address === undefined) return;
      counted.delete(session.id);
      clients.close(address);
    },

    onAuth(auth, session, callback) {
      const started = performance.now();
      const username = auth.username ?? "";
      const client = session.remoteAddress;
      // A locked client or username is refused unheard: no secret is checked, so a guess made
      // during the lock tells nothing, and nothing is counted. The credential is read with the
      // locks, in one store read, and checked only if none holds.
      authFailures.check(client, username, isApiKey(auth) ? [] : loginKeys(username)).then(
        (seen) => authenticate(auth, session, callback, { started, seen }),
        (err) => {
          log.error("smtp.auth_error", { err });
          callback(smtpError(replies.authTemporary()));
        },
      );
    },

    onMailFrom(address, session, callback) {
      scopes.delete(session.id);
      const user = session.user as unknown as SessionUser | undefined;
      if (draining) return callback(smtpError(replies.shuttingDown(deps.hostname)));
      if (!user && !isTrusted(session.remoteAddress)) {
        // Before STARTTLS the client could not have authenticated: say which step comes first.
        return callback(smtpError(session.secure ? replies.authRequired() : replies.tlsFirst()));
      }
      const problem = checkSenderAddress(address.address);
      if (problem) return callback(smtpError(replies.badSender(problem)));
      if (needsSmtputf8(address, session)) {
        return callback(smtpError(replies.utf8WithoutSmtputf8()));
      }
      // A transaction takes its hold on the memory budget before its body comes: a client at
      // its share, or a relay at its total, hears 452 4.3.1 now rather than after the upload.
      releaseHold(session.id);
      if (deps.memory) {
        const hold = deps.memory.hold(session.remoteAddress, INTAKE_WORKING_BYTES);
        if (!hold) {
          metrics.limitRefusals.inc({ limit: "memory_budget" });
          log.warn("smtp.rejected", { client: session.remoteAddress, reason: "memory_budget" });
          return callback(smtpError(replies.memoryBusy()));
        }
        holds.set(session.id, hold);
      }
      refuseTransaction(session, user, address.address).then(
        (refusal) => {
          if (refusal) releaseHold(session.id);
          if (refusal) {
            log.info("smtp.rejected", {
              client: session.remoteAddress,
              credential: user?.credentialId ?? null,
              from: address.address,
              reply: `${refusal.responseCode} ${refusal.message}`,
            });
            return callback(smtpError(refusal));
          }
          // Deliveries behind intake: the transaction waits its turn (bounded) before its 250.
          if (!deps.inFlow) return callback();
          deps.inFlow.admit().then((ticket) => {
            // Gone while it waited: nothing will end the transaction but this.
            if (!sessions.has(session.id)) return ticket.release();
            flowTickets.set(session.id, ticket);
            callback();
          });
        },
        () => {
          // The store did not answer the sender's checks: the queue's trouble, as at RCPT.
          releaseHold(session.id);
          callback(smtpError(replies.storeFailed()));
        },
      );
    },

    onRcptTo(address, session, callback) {
      recipientRefusal(address, session).then(
        (refusal) => callback(refusal ? smtpError(refusal) : undefined), // a 421 closes
        () => callback(smtpError(replies.storeFailed())),
      );
    },

    onData(stream, session, callback) {
      const user = session.user as unknown as SessionUser | undefined;
      const envelope = session.envelope;
      const mailFrom = envelope.mailFrom ? envelope.mailFrom.address : "";
      const recipients = envelope.rcptTo.map((r) => r.address);
      const fault = faultAtData(deps.sandbox, recipients, sandboxFaultOf(session));
      if (fault === "smtp-451" || fault === "smtp-552") {
        return refuseAfterData(stream, sandboxReplies[fault], callback);
      }
      if (fault === "smtp-slow") callback = late(callback, deps.sandbox!.slowMs);
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
        body: messageChunks(stream),
        ...(scopes.has(session.id) ? { scope: scopes.get(session.id)! } : {}),
        ...(holds.has(session.id) ? { memory: holds.get(session.id)! } : {}),
        // SMTP smuggling: a bare CR or LF (or a NUL) refuses the message, trusted client or not.
        lineEndings: "reject",
      }).then((result) => {
        const fields = {
          client: session.remoteAddress,
          credential: user?.credentialId ?? null,
          from: mailFrom,
          rcpts: recipients.length,
          ms: Math.round(performance.now() - started),
        };
        if (result.ok) {
          log.info("smtp.accepted", {
            msg: result.id,
            size: result.size,
            ...(result.held ? { held: true } : {}),
            ...fields,
          });
          return callback(null, replies.queued(result.id));
        }
        const reply = intakeRefused(result);
        byReason(INTAKE_LOGS, result, log, reply, { ...fields, aborted: stream.destroyed });
        callback(smtpError(reply));
      }, (err) => {
        log.error("smtp.store_failed", { err });
        callback(smtpError(replies.storeFailed()));
      }).finally(() => {
        releaseHold(session.id);
        openTransactions--;
      });
    },
  };

  const submission = new SMTPServer({ ...base, secure: false } as SMTPServerOptions);
  const smtps = new SMTPServer({ ...base, secure: true } as SMTPServerOptions);
  for (const [server, name] of [[submission, "submission"], [smtps, "smtps"]] as const) {
    server.on("error", listenerErrorLogger(log, "smtp", name));
  }
  await listen(submission, config.smtpPort, config.listen, "POSTERN_SMTP_PORT");
  await listen(smtps, config.smtpsPort, config.listen, "POSTERN_SMTPS_PORT");

  return {
    async drain(graceMs) {
      draining = true;
      // A transaction is under way from an accepted MAIL FROM until its DATA is answered (or
      // RSET, or the client leaves); smtp-server has no hook for RSET, so this looks.
      const busy = () =>
        openTransactions > 0 || [...sessions.values()].some((s) => s.envelope.mailFrom);
      const deadline = Date.now() + graceMs;
      while (busy() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    updateTls(tls) {
      for (const server of [submission, smtps]) {
        server.updateSecureContext({ key: tls.key, cert: tls.cert });
      }
    },
    async close() {
      await Promise.all(
        [submission, smtps].map((s) => new Promise<void>((r) => s.close(() => r()))),
      );
    },
    ports: () => ({ submission: listeningPort(submission), smtps: listeningPort(smtps) }),
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
      primeListener(server);
      resolve();
    });
  });
}

export function listeningPort(server: SMTPServer): number {
  const addr = server.server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}
