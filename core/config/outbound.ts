/**
 * Outbound SMTP: how long each step may wait for the receiving server, and how many connections
 * this node keeps open to all sites together. The timeouts are RFC 5321 §4.5.3.2's minimums (and
 * Postfix's smtp_*_timeout defaults, named beside each field); the connect timeout is the
 * shaping profile's `connect_timeout` (core/config/shaping.ts). README's settings table lists
 * every one.
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { duration } from "./fields.ts";

export const OUTBOUND_FIELDS = {
  /** The 220 greeting, and a STARTTLS handshake (smtp_helo_timeout; RFC 5321: 5 min). */
  greetingTimeout: duration.default(parseDuration("5m")),
  /** MAIL FROM's reply (smtp_mail_timeout; RFC 5321: 5 min). */
  mailTimeout: duration.default(parseDuration("5m")),
  /** RCPT TO's reply (smtp_rcpt_timeout; RFC 5321: 5 min). */
  rcptTimeout: duration.default(parseDuration("5m")),
  /** DATA's 354 (smtp_data_init_timeout; RFC 5321: 2 min). */
  dataTimeout: duration.default(parseDuration("2m")),
  /** Each block of the message while it is sent (smtp_data_xfer_timeout; RFC 5321: 3 min). */
  dataBlockTimeout: duration.default(parseDuration("3m")),
  /** The reply to the final dot (smtp_data_done_timeout; RFC 5321: 10 min). */
  dataDoneTimeout: duration.default(parseDuration("10m")),
  /** Outbound connections open at once from this node, over every site (default_process_limit). */
  outboundMaxConnections: z.coerce.number().int().min(1).default(1000),
};

/** Env variable → field, merged into load.ts's table. */
export const OUTBOUND_ENV_NAMES = {
  POSTERN_GREETING_TIMEOUT: "greetingTimeout",
  POSTERN_MAIL_TIMEOUT: "mailTimeout",
  POSTERN_RCPT_TIMEOUT: "rcptTimeout",
  POSTERN_DATA_TIMEOUT: "dataTimeout",
  POSTERN_DATA_BLOCK_TIMEOUT: "dataBlockTimeout",
  POSTERN_DATA_DONE_TIMEOUT: "dataDoneTimeout",
  POSTERN_OUTBOUND_MAX_CONNECTIONS: "outboundMaxConnections",
} as const;

/** The per-step timeouts, in milliseconds, as the outbound session takes them. */
export function replyTimeouts(c: {
  greetingTimeout: number;
  commandTimeout: number;
  mailTimeout: number;
  rcptTimeout: number;
  dataTimeout: number;
  dataBlockTimeout: number;
  dataDoneTimeout: number;
}) {
  return {
    greetingMs: c.greetingTimeout,
    commandMs: c.commandTimeout,
    mailMs: c.mailTimeout,
    rcptMs: c.rcptTimeout,
    dataMs: c.dataTimeout,
    dataBlockMs: c.dataBlockTimeout,
    dataDoneMs: c.dataDoneTimeout,
  };
}
