/**
 * Abuse limits: what one client may cost us. Defaults follow Postfix where Postfix has the knob
 * (its parameter is named beside each field) and are stricter where Postfix relies on its
 * process model instead (a whole-session deadline, a hard TLS handshake deadline). README's
 * "Security and limits" lists every one. Loopback and trusted networks are not exempt; trusted
 * networks have a higher per-client session count of their own.
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { duration, rate } from "./fields.ts";

const count = z.coerce.number().int().min(0);

export const LIMIT_FIELDS = {
  /** SMTP sessions open at once over both listeners (Postfix: default_process_limit 100). */
  smtpMaxConnections: count.default(1000),
  /** Sessions one client address may hold (smtpd_client_connection_count_limit). */
  smtpClientConnectionLimit: count.default(50),
  /**
   * Sessions one trusted-network address may hold instead (Postfix exempts $mynetworks from its
   * client limits: one trusted host may carry a whole load); still counted against the total.
   */
  trustedMaxConnections: count.default(500),
  /**
   * New sessions per client address, e.g. "60/min", the whole count allowed back to back
   * (smtpd_client_connection_rate_limit; unset = no limit, as Postfix's default 0).
   */
  smtpClientConnectionRate: rate.optional(),
  /** Longest command line in bytes, CRLF excluded (line_length_limit; RFC 5321 needs 512). */
  smtpMaxLineLength: z.coerce.number().int().min(512).default(2048),
  /** Largest header section of a message in bytes (header_size_limit). */
  maxHeaderSize: z.coerce.number().int().min(1024).default(102_400),
  /** Recipients per message; the rest hear 452 4.5.3 (smtpd_recipient_limit, RFC 5321 §4.5.3.1.8). */
  maxRecipients: z.coerce.number().int().min(100).default(1000),
  /** Errors in a session, without a delivered message, before each reply waits (smtpd_soft_error_limit). */
  smtpSoftErrorLimit: count.default(10),
  /** Errors in a session, without a delivered message, before it is closed with 421 (smtpd_hard_error_limit). */
  smtpHardErrorLimit: z.coerce.number().int().min(1).default(20),
  /** The wait before the next command once past the soft limit (smtpd_error_sleep_time). */
  smtpErrorSleep: duration.default(parseDuration("1s")),
  /** A session that sends nothing this long is closed with 421 (smtpd_timeout). */
  smtpIdleTimeout: duration.default(parseDuration("300s")),
  /** Whole-session deadline, however busy the client keeps it (slowloris). */
  smtpSessionTimeout: duration.default(parseDuration("30m")),
  /**
   * DATA must arrive at this many bytes per second: it may take smtpIdleTimeout plus one second
   * per this many bytes received (smtpd_min_data_rate with smtpd_per_request_deadline); 0 = off.
   */
  smtpMinDataRate: count.default(500),
  /**
   * How long a new transaction may wait before its MAIL FROM is answered while this node's mail
   * waiting for a first delivery attempt is past core/policy/in_flow.ts's limits (Postfix's
   * in_flow_delay); 0 = never wait.
   */
  inFlowDelay: duration.default(parseDuration("1s")),
  /** Hard deadline for a TLS handshake, STARTTLS or implicit (smtpd_starttls_timeout). */
  smtpTlsHandshakeTimeout: duration.default(parseDuration("30s")),
  /** Failed AUTHs per client address, and per username, that lock it; 0 = never lock. */
  authFailureLimit: count.default(5),
  /** How long a lock lasts after the last failure, and how long failures are remembered. */
  authLockout: duration.default(parseDuration("10m")),
  /** The reply to the n-th recent failure waits n × this (Dovecot's auth_failure_delay). */
  authFailureDelay: duration.default(parseDuration("1s")),
  /** Largest HTTP request body in bytes, other than a send (which may carry a whole message). */
  httpMaxBody: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** Deepest nesting of arrays and objects in a JSON request body. */
  httpMaxJsonDepth: z.coerce.number().int().min(4).default(32),
  /** Requests per API key (per client address without one), one second's worth back to back. */
  httpRateLimit: rate.default({ count: 100, perMs: 1000 }),
  /**
   * A request's headers must arrive within this of its start (of the connection, for the first),
   * else 408 and the connection closes (Node's headersTimeout, nginx's client_header_timeout).
   */
  httpHeadersTimeout: duration.default(parseDuration("20s")),
  /** A whole request, headers and body, must arrive within this (Node's requestTimeout); 0 = off. */
  httpRequestTimeout: duration.default(parseDuration("10m")),
  /**
   * A request body must arrive at this many bytes per second: it may take httpHeadersTimeout plus
   * one second per this many bytes received, else the connection is dropped; 0 = off.
   */
  httpMinBodyRate: count.default(500),
  /** HTTP connections open at once; past it new connections are closed unanswered; 0 = no cap. */
  httpMaxConnections: count.default(1000),
  /**
   * Message bytes held in memory at once over all SMTP transactions and HTTP requests; past it
   * bodies go to the store as they arrive, or the client hears 452 4.3.1 / 503. The default suits
   * a 1 GB host (the relay itself needs about 200 MB).
   */
  memoryBudget: z.coerce.number().int().min(1024 * 1024).default(512 * 1024 * 1024),
  /** What one client address may hold of it; default three quarters of the budget. */
  memoryBudgetPerClient: z.coerce.number().int().min(64 * 1024).optional(),
  /**
   * Worker threads making DKIM RSA signatures (core/mail/dkim_pool.ts), started as signing needs
   * them; 0 signs on the main thread. Unset: core/policy/dkim_placement.ts decides by the cores
   * (and, on 2, by what a signature is measured to cost).
   */
  dkimWorkers: z.coerce.number().int().min(0).max(256).optional(),
};

/** Env variable → field, merged into load.ts's table. */
export const LIMIT_ENV_NAMES = {
  POSTERN_SMTP_MAX_CONNECTIONS: "smtpMaxConnections",
  POSTERN_SMTP_CLIENT_CONNECTION_LIMIT: "smtpClientConnectionLimit",
  POSTERN_SMTP_CLIENT_CONNECTION_RATE: "smtpClientConnectionRate",
  POSTERN_TRUSTED_MAX_CONNECTIONS: "trustedMaxConnections",
  POSTERN_SMTP_MAX_LINE_LENGTH: "smtpMaxLineLength",
  POSTERN_MAX_HEADER_SIZE: "maxHeaderSize",
  POSTERN_DKIM_WORKERS: "dkimWorkers",
  POSTERN_MAX_RECIPIENTS: "maxRecipients",
  POSTERN_SMTP_SOFT_ERROR_LIMIT: "smtpSoftErrorLimit",
  POSTERN_SMTP_HARD_ERROR_LIMIT: "smtpHardErrorLimit",
  POSTERN_SMTP_ERROR_SLEEP: "smtpErrorSleep",
  POSTERN_SMTP_IDLE_TIMEOUT: "smtpIdleTimeout",
  POSTERN_SMTP_SESSION_TIMEOUT: "smtpSessionTimeout",
  POSTERN_SMTP_MIN_DATA_RATE: "smtpMinDataRate",
  POSTERN_SMTP_TLS_HANDSHAKE_TIMEOUT: "smtpTlsHandshakeTimeout",
  POSTERN_IN_FLOW_DELAY: "inFlowDelay",
  POSTERN_AUTH_FAILURE_LIMIT: "authFailureLimit",
  POSTERN_AUTH_LOCKOUT: "authLockout",
  POSTERN_AUTH_FAILURE_DELAY: "authFailureDelay",
  POSTERN_HTTP_MAX_BODY: "httpMaxBody",
  POSTERN_HTTP_MAX_JSON_DEPTH: "httpMaxJsonDepth",
  POSTERN_HTTP_RATE_LIMIT: "httpRateLimit",
  POSTERN_HTTP_HEADERS_TIMEOUT: "httpHeadersTimeout",
  POSTERN_HTTP_REQUEST_TIMEOUT: "httpRequestTimeout",
  POSTERN_HTTP_MIN_BODY_RATE: "httpMinBodyRate",
  POSTERN_HTTP_MAX_CONNECTIONS: "httpMaxConnections",
  POSTERN_MEMORY_BUDGET: "memoryBudget",
  POSTERN_MEMORY_BUDGET_PER_CLIENT: "memoryBudgetPerClient",
} as const;
