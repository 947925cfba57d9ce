import assert from "node:assert/strict";
import { decide, GREYLIST_MARGIN_MS } from "./outcome.ts";
import type { RecipientRow } from "../model.ts";
import type { DnsFailure } from "./dns_outcome.ts";

const MIN = 60_000;
const policy = { schedule: [1 * MIN, 5 * MIN, 15 * MIN], maxAgeMs: 24 * 60 * MIN };

function row(attempts = 0, queuedAt = 0): RecipientRow {
  return {
    msgId: "M",
    idx: 0,
    rcpt: "a@dest.test",
    domain: "dest.test",
    status: attempts ? "deferred" : "queued",
    attempts,
    queuedAt,
    nextAttemptAt: 0,
    updatedAt: 0,
  };
}

Deno.test("decide() turns each reply into the next step: when, or why not", () => {
  const now = 10 * MIN;
  const cases: Array<{
    says: string;
    reply: string;
    code?: number;
    kind: "success" | "transient" | "permanent";
    row?: RecipientRow;
    notBefore?: number;
    neverBounce?: boolean;
    dns?: DnsFailure;
    want: { status: string; event: string; category: string | null; next: number | null };
  }> = [
    {
      says: "delivered",
      reply: "250 2.0.0 Ok",
      code: 250,
      kind: "success",
      want: { status: "delivered", event: "delivered", category: null, next: null },
    },
    {
      says: "a greylist window: retried after the window plus the margin, not on the schedule",
      reply: "451 4.7.1 Greylisted, please try again in 300 seconds",
      code: 451,
      kind: "transient",
      want: {
        status: "deferred",
        event: "deferred",
        category: "greylisted",
        next: now + 300_000 + GREYLIST_MARGIN_MS,
      },
    },
    {
      says: "a greylist window shorter than the schedule: the schedule wins",
      reply: "450 4.2.0 Greylisted for 10 seconds",
      code: 450,
      kind: "transient",
      want: { status: "deferred", event: "deferred", category: "greylisted", next: now + MIN },
    },
    {
      says: "a plain deferral follows the schedule by attempt count",
      reply: "451 4.3.0 Temporary local problem",
      code: 451,
      kind: "transient",
      row: row(1),
      want: { status: "deferred", event: "deferred", category: "other", next: now + 5 * MIN },
    },
    {
      says: "a 421 storm reply is throttled",
      reply: "421 4.7.0 Too many connections from your IP, slow down",
      code: 421,
      kind: "transient",
      want: { status: "deferred", event: "deferred", category: "throttled", next: now + MIN },
    },
    {
      says: "a warm-up hold waits until its notBefore",
      reply: "451 4.4.5 Every source address of the pool is at its warm-up limit",
      code: 451,
      kind: "transient",
      notBefore: now + 600 * MIN,
      want: { status: "deferred", event: "deferred", category: "throttled", next: now + 600 * MIN },
    },
    {
      says: "a 5.1.1 bounces at once",
      reply: "550 5.1.1 <a@dest.test>: User unknown",
      code: 550,
      kind: "permanent",
      want: { status: "bounced", event: "bounced", category: "invalid_recipient", next: null },
    },
    {
      says: "a 552 mailbox full bounces",
      reply: "552 5.2.2 Mailbox full",
      code: 552,
      kind: "permanent",
      want: { status: "bounced", event: "bounced", category: "mailbox_full", next: null },
    },
    {
      says: "past max age a deferral expires",
      reply: "451 4.3.0 try later",
      code: 451,
      kind: "transient",
      row: row(5, now - 24 * 60 * MIN),
      want: { status: "bounced", event: "expired", category: "expired", next: null },
    },
    {
      says: "a STARTTLS refusal defers as tls_failure",
      reply: "ETLS: Error upgrading connection with STARTTLS: 500 command not recognized",
      kind: "transient",
      want: { status: "deferred", event: "deferred", category: "tls_failure", next: now + MIN },
    },
    {
      says: "a 5yz before any transaction (STARTTLS refused) defers as tls_failure, never bounces",
      reply: "ETLS: Error upgrading connection with STARTTLS: 500 Error: command not recognized",
      kind: "transient",
      neverBounce: true,
      want: { status: "deferred", event: "deferred", category: "tls_failure", next: now + MIN },
    },
    {
      says: "a 554 greeting defers, never bounces: no recipient was judged",
      reply: "554 5.7.1 No SMTP service here",
      code: 554,
      kind: "transient",
      neverBounce: true,
      want: { status: "deferred", event: "deferred", category: "policy_block", next: now + MIN },
    },
    {
      says: "a domain that does not exist (NXDOMAIN) bounces as bad_domain",
      reply: "nowhere.test does not exist (NXDOMAIN)",
      kind: "permanent",
      dns: "nxdomain",
      want: { status: "bounced", event: "bounced", category: "bad_domain", next: null },
    },
    {
      says: "a null MX bounces as bad_domain",
      reply: "nomail.test accepts no mail (null MX, RFC 7505)",
      kind: "permanent",
      dns: "null_mx",
      want: { status: "bounced", event: "bounced", category: "bad_domain", next: null },
    },
    {
      says: "SERVFAIL defers on the schedule, whatever the text says",
      reply: "MX lookup for dest.test failed: MX dest.test: the name server answered SERVFAIL",
      kind: "transient",
      dns: "temporary",
      want: { status: "deferred", event: "deferred", category: "other", next: now + MIN },
    },
    {
      says: "MX hosts without addresses defer while attempts remain",
      reply: "MX hosts of dest.test have no addresses",
      kind: "transient",
      dns: "no_address",
      row: row(2),
      want: { status: "deferred", event: "deferred", category: "bad_domain", next: now + 15 * MIN },
    },
    {
      says: "MX hosts without addresses expire at the maximum age",
      reply: "MX hosts of dest.test have no addresses",
      kind: "transient",
      dns: "no_address",
      row: row(5, now - 24 * 60 * MIN),
      want: { status: "bounced", event: "expired", category: "expired", next: null },
    },
    {
      says: "a connection failure that names NXDOMAIN never bounces by its wording",
      reply: "getaddrinfo ENOTFOUND mx.nowhere.test",
      kind: "transient",
      want: { status: "deferred", event: "deferred", category: "bad_domain", next: now + MIN },
    },
  ];
  for (const c of cases) {
    const r = decide(
      c.row ?? row(),
      {
        kind: c.kind,
        reply: c.reply,
        ...(c.code ? { code: c.code } : {}),
        ...(c.dns ? { dns: c.dns } : {}),
      },
      policy,
      now,
      { notBefore: c.notBefore, neverBounce: c.neverBounce },
    );
    assert.deepEqual(
      { status: r.status, event: r.event, category: r.category, next: r.nextAttemptAt },
      c.want,
      c.says,
    );
  }
});
