/**
 * What a final failure sets off besides the recipient row: the address goes on the account's
 * suppression list (a hard bounce, or its Nth expiry in a row), and the sender is owed an RFC 3464
 * DSN. Both ride in the attempt's own commit; the DSN itself is queued right after through
 * intake, from `<>`, by a commit that claims the request (so a crash neither loses nor doubles it).
 *
 * A DSN never goes to `<>` and never answers a DSN (no loops), and a credential may opt out.
 */
import { accept, type IntakeDeps } from "../core/intake.ts";
import {
  buildDsn,
  type DsnRecipient,
  dsnStatus,
  headerSection,
  isDeliveryReport,
} from "../core/mail/dsn.ts";
import type { BodyCache } from "../core/store/body_cache.ts";
import { readFirstChunk } from "../core/store/bodies.ts";
import {
  clearStreakOp,
  loadStreaks,
  normalizeAddress,
  setStreakOp,
  type Suppression,
  type SuppressionCache,
  suppressOps,
} from "../core/store/suppressions.ts";
import {
  claimDsnOp,
  type DsnRequest,
  dsnRequestOp,
  listPendingDsns,
  type PendingDsn,
  pendingDsn,
} from "../core/store/dsn_requests.ts";
import type { RecipientResult } from "../core/store/deliveries.ts";
import type { MessageRecord } from "../core/model.ts";
import type { Logger } from "../core/log.ts";
import { newId } from "../core/ids.ts";
import { bounceSuppresses, expiryCountsTowardSuppression } from "../core/policy/dns_outcome.ts";
import { isSimulatorAddress } from "../core/sandbox/intake.ts";
import { suppressionListFor } from "../core/policy/sandbox.ts";
import type { CredentialSettingsCache } from "./credential_settings.ts";

export interface BounceDeps {
  kv: Deno.Kv;
  intake: IntakeDeps;
  bodyCache: BodyCache;
  hostname: string;
  /** An address that expires this many times in a row is suppressed. */
  suppressAfterExpiries: number;
  suppressions: SuppressionCache;
  credentials: CredentialSettingsCache;
  log: Logger;
  now(): number;
}

export interface BounceEffects {
  apply(op: Deno.AtomicOperation): void;
  /** Runs once the attempt's commit (versionstamp `stamp`) succeeded. */
  after(stamp: string): void;
}

export interface AttemptFacts {
  /** The MX or smarthost that answered (Remote-MTA). */
  remoteMta?: string | undefined;
  /** false: an operator's purge that drops without telling the sender. */
  dsn?: boolean;
  /** The body, when it rides in the attempted due entry (the store has no chunks of it). */
  body?: Uint8Array;
}

/**
 * The suppression and DSN side of one attempt's results. Reads KV only when something bounced
 * or expired; a delivery costs nothing unless it ends an expiry streak the node knows of.
 */
export async function bounceEffects(
  deps: BounceDeps,
  msg: MessageRecord,
  results: readonly RecipientResult[],
  facts: AttemptFacts,
): Promise<BounceEffects> {
  const account = msg.account;
  // A delivery ends an expiry streak: only where one exists, no read.
  const delivered = results.filter((r) =>
    r.status === "delivered" && deps.suppressions.hasStreak(account, r.row.rcpt)
  ).map((r) => r.row.rcpt);
  const streaksEnded = () => {
    for (const rcpt of delivered) deps.suppressions.rememberStreak(account, rcpt, false);
  };
  const failed = results.filter((r) => r.status === "bounced");
  if (failed.length === 0) {
    return {
      apply: (op) => delivered.forEach((rcpt) => clearStreakOp(op, account, rcpt)),
      after: streaksEnded,
    };
  }
  const now = deps.now();
  /** Each with the list it goes on: the account's, or the sandbox's for a simulator address. */
  const suppress: (Suppression & { list: string })[] = [];
  const sandbox = deps.intake.sandbox;
  const listOf = (address: string) =>
    sandbox ? suppressionListFor(account, address, sandbox.domain) : account;
  const expired = failed.filter((r) =>
    r.event === "expired" && expiryCountsTowardSuppression(r.dnsCaused === true)
  );
  const streaks = expired.length > 0
    ? await loadStreaks(deps.kv, account, expired.map((r) => r.row.rcpt))
    : new Map();
  const streakWrites: { address: string; count: number }[] = [];
  for (const r of failed) {
    // Test-mode mail never suppresses (nor counts toward suppressing) a real address.
    if (msg.test && !isSimulatorAddress(sandbox, r.row.rcpt)) continue;
    const address = normalizeAddress(r.row.rcpt);
    const list = listOf(address);
    // A simulator address's expiries (timeout@) are rehearsals: no streak toward suppression.
    if (r.event === "expired" && list !== account) continue;
    if (r.event === "expired") {
      if (!expiryCountsTowardSuppression(r.dnsCaused === true)) continue;
      const count = (streaks.get(address)?.count ?? 0) + 1;
      streakWrites.push({ address, count });
      if (count >= deps.suppressAfterExpiries) {
        suppress.push({
          list,
          address,
          reason: "expired",
          source: "expiry",
          createdAt: now,
          msgId: msg.id,
          reply: r.reply.slice(0, 500),
        });
      }
    } else if (bounceSuppresses(r.category)) {
      suppress.push({
        list,
        address,
        reason: r.category,
        source: "bounce",
        createdAt: now,
        msgId: msg.id,
        reply: r.reply.slice(0, 500),
      });
    }
  }

  const request = await dsnRequestFor(deps, msg, failed, facts, now);
  return {
    apply(op) {
      delivered.forEach((rcpt) => clearStreakOp(op, account, rcpt));
      for (const s of streakWrites) {
        setStreakOp(op, account, s.address, { count: s.count, lastAt: now });
      }
      for (const { list, ...s } of suppress) suppressOps(op, list, s);
      if (request) dsnRequestOp(op, request);
    },
    after(stamp) {
      streaksEnded();
      for (const s of streakWrites) deps.suppressions.rememberStreak(account, s.address, true);
      for (const s of suppress) {
        deps.suppressions.remember(s.list, s.address, s.reason);
        deps.log.info("suppression.added", {
          account,
          rcpt: s.address,
          reason: s.reason,
          ...(s.list !== account ? { list: s.list } : {}),
        });
      }
      if (request) {
        sendDsn(deps, pendingDsn(request, stamp)).catch((err) =>
          deps.log.warn("dsn.failed", { msg: msg.id, err })
        );
      }
    },
  };
}

async function dsnRequestFor(
  deps: BounceDeps,
  msg: MessageRecord,
  failed: readonly RecipientResult[],
  facts: AttemptFacts,
  now: number,
): Promise<DsnRequest | null> {
  // Never to the null sender, never about a DSN we sent, never when the sender opted out.
  if (facts.dsn === false || msg.mailFrom === "" || msg.via === "dsn") return null;
  if (!(await deps.credentials.get(msg.credentialId)).dsn) return null;
  const headers = await originalHeaders(deps, msg, facts.body);
  if (isDeliveryReport(headers)) return null;
  const recipients: DsnRecipient[] = failed.map((r) => ({
    rcpt: r.row.rcpt,
    status: dsnStatus(
      r.reply,
      r.event === "expired" ? "expired" : "bounced",
      r.category ?? undefined,
    ),
    diagnostic: r.reply,
    ...(facts.remoteMta ? { remoteMta: facts.remoteMta } : {}),
    lastAttemptAt: now,
  }));
  return {
    id: newId(now),
    account: msg.account,
    msgId: msg.id,
    to: msg.mailFrom,
    ...(msg.test ? { test: true } : {}),
    arrivalAt: msg.createdAt,
    headers,
    recipients,
    createdAt: now,
  };
}

/** The header section as it was sent: the DKIM prefix, then the stored headers. */
async function originalHeaders(
  deps: BounceDeps,
  msg: MessageRecord,
  body: Uint8Array | undefined,
): Promise<Uint8Array> {
  let first = deps.bodyCache.get(msg.id) ?? body;
  if (!first) {
    first = (await readFirstChunk(deps.kv, msg)) ?? undefined;
  }
  const stored = first ? headerSection(first) : new Uint8Array(0);
  if (!msg.prefix) return stored;
  const prefix = new TextEncoder().encode(msg.prefix);
  const out = new Uint8Array(prefix.length + stored.length);
  out.set(prefix);
  out.set(stored, prefix.length);
  return headerSection(out);
}

/** Queues the DSN through intake, from `<>`; the same commit claims the request. */
export async function sendDsn(deps: BounceDeps, pending: PendingDsn): Promise<void> {
  const r = pending.request;
  const now = deps.now();
  const body = buildDsn({
    reportingMta: deps.hostname,
    queueId: r.msgId,
    to: r.to,
    arrivalAt: r.arrivalAt,
    originalHeaders: r.headers,
    recipients: r.recipients,
    now,
    messageId: `<${newId(now).toLowerCase()}.dsn@${deps.hostname}>`,
  });
  const result = await accept(deps.intake, {
    account: r.account,
    credentialId: null,
    mailFrom: "",
    recipients: [r.to],
    clientAddress: "127.0.0.1",
    heloName: deps.hostname,
    protocol: "LOCAL",
    via: "dsn",
    // A DSN about test-mode mail is test-mode mail too: it goes to the simulated MX.
    ...(r.test ? { test: true } : {}),
    body: (async function* () {
      yield body;
    })(),
    alsoCommit: (op) => claimDsnOp(op, pending),
  });
  if (result.ok) {
    deps.log.info("dsn.queued", {
      msg: r.msgId,
      dsn: result.id,
      to: r.to,
      rcpts: r.recipients.length,
    });
  } else {
    // Another node (or an earlier try) claimed it, or the store failed: the sweep retries.
    deps.log.debug("dsn.not_queued", { msg: r.msgId, reason: result.reason });
  }
}

/** Sends DSNs a crash or a failed commit left owed (older than `minAgeMs`). */
export async function sweepPendingDsns(deps: BounceDeps, minAgeMs = 30_000): Promise<number> {
  const pending = await listPendingDsns(deps.kv, deps.now() - minAgeMs, 100);
  for (const p of pending) await sendDsn(deps, p);
  return pending.length;
}
