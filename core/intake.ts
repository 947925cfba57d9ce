/**
 * accept(submission): the one door into the queue for SMTP and HTTP alike.
 * Normalise line endings → complete headers → chunk the body → ONE commit that makes the message,
 * its recipient rows, their due entries and the `accepted` event visible together. The caller
 * answers 250 only after this resolves ok; on failure nothing half-written is visible, because
 * due entries and rows are only acted on once their message record exists. The commit's layout
 * and the chunk writer live in core/store/messages.ts.
 */
import type { Committer } from "./store/committer.ts";
import { CHUNK_SIZE, concatChunks } from "./store/bodies.ts";
import { ChunkWriter, commitMessage } from "./store/messages.ts";
import { writableSpoolOf } from "./store/body_spool.ts";
import type { BodyCache } from "./store/body_cache.ts";
import { type BareLineEnding, bareLineEndingFinder, crlfNormalizer } from "./mail/line_endings.ts";
import { completeHeaders } from "./mail/headers.ts";
import { asciiDomain, domainOf } from "./mail/address.ts";
import { type DkimSignatureMaker, DkimSigner, type DkimSigningKey } from "./mail/dkim.ts";
import { fromHeaderDomains } from "./mail/sender_domains.ts";
import { checkSendScope, type ScopeRefusal, type SendScope } from "./send_scope.ts";
import { newId } from "./ids.ts";
import {
  holdIdempotencyKey,
  type IdempotencyLookup,
  type IdempotencyRecord,
  lookupIdempotency,
} from "./store/idempotency.ts";
import { MAX_TAGS, takePosternHeaders } from "./mail/postern_headers.ts";
import type { VerpConfig } from "./mail/verp.ts";
import { metrics } from "./metrics.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "./model.ts";
import type { QueueSignal } from "./queue_signal.ts";
import type { Logger } from "./log.ts";
import type { ContentVerdict, GateInput } from "./content/gate.ts";
import type { HoldRecord } from "./store/holds.ts";
import type { MemoryHold } from "./policy/memory_budget.ts";
import { queueDomain, type SandboxIntake, sandboxSuppression } from "./sandbox/intake.ts";

export interface Submission {
  account: string;
  credentialId: string | null;
  mailFrom: string;
  recipients: readonly string[];
  clientAddress: string;
  heloName: string;
  /** RFC 3848 protocol name for the Received header. */
  protocol: string;
  via: MessageRecord["via"];
  body: AsyncIterable<Uint8Array>;
  /** Checks and mutations that must commit with the message (a DSN claims its request). */
  alsoCommit?: (op: Deno.AtomicOperation) => void;
  /**
   * The sender's scope (core/send_scope.ts), checked against the header section: one From and
   * at most one Sender, every domain they name, the pool X-Postern-Pool asks for. Absent for
   * mail Postern writes itself (DSNs).
   */
  scope?: SendScope;
  /** Labels for search, stats and webhooks; X-Postern-Tags in the message adds to them. */
  tags?: readonly string[];
  /** The caller's own strings, echoed in events and webhooks. */
  metadata?: Readonly<Record<string, string>>;
  /**
   * A repeat within 24 h returns the first message's id and queues nothing. Over SMTP the
   * X-Postern-Idempotency-Key header sets it (and is removed from the message).
   */
  idempotencyKey?: string;
  /** A digest of the request, kept with the key so a repeat can be told from a conflict. */
  idempotencyFingerprint?: string;
  /**
   * What a bare CR or LF (or a NUL) in the body does. "normalize" (the default, for HTTP raw
   * uploads) turns each into CRLF; "reject" refuses the message, as Postfix's
   * smtpd_forbid_bare_newline = reject does (SMTP submission sets it: SMTP smuggling).
   */
  lineEndings?: "normalize" | "reject";
  /**
   * The caller's hold on the memory budget (core/policy/memory_budget.ts), of at least
   * INTAKE_WORKING_BYTES. Body chunks wait in memory for the final commit only while it can grow;
   * past that they are written to the store as they arrive. A header section it cannot hold
   * refuses the message (`memory_busy`). Absent: nothing is limited.
   */
  memory?: MemoryHold;
  /**
   * Test mode for this submission (HTTP `"test": true`); the credential's or the account's
   * `test_mode` turns it on too. The mail leaves only for the simulated MX (core/sandbox/).
   */
  test?: boolean;
}

/** Why intake refused a message: the one value each door maps to its reply (one table each). */
export type IntakeRejection =
  | { reason: "too_large"; limit: number }
  | { reason: "scope"; refusal: ScopeRefusal }
  | { reason: "bare_line_ending"; found: BareLineEnding }
  | { reason: "header_too_large"; limit: number }
  /** The content scan refused it; `message` is rspamd's short reason. */
  | { reason: "content_rejected"; message: string }
  /** rspamd failed and the account's on_error is tempfail. */
  | { reason: "content_unavailable" }
  | { reason: "memory_busy" }
  /** No DKIM signature could be made now (signing pool busy or failing): deferred, not unsigned. */
  | { reason: "signing_unavailable" }
  | { reason: "store_failed"; error: string };

/**
 * Which refusal is answered when several apply: the size limit first (the whole DATA was
 * drained), then what the header section showed, then the bytes themselves.
 */
const REJECTION_PRECEDENCE: readonly IntakeRejection["reason"][] = [
  "too_large",
  "scope",
  "bare_line_ending",
  "header_too_large",
  "memory_busy",
];

function precedence(r: IntakeRejection): number {
  const at = REJECTION_PRECEDENCE.indexOf(r.reason);
  return at < 0 ? REJECTION_PRECEDENCE.length : at;
}

export type IntakeResult =
  | {
    ok: true;
    id: string;
    size: number;
    /** A repeat of an idempotency key: `id` is the first message's, nothing new was queued. */
    duplicate?: boolean;
    /** For a repeat: the first request's fingerprint, so the caller can tell a conflict. */
    firstFingerprint?: string;
    /** The content scan held it: accepted, but not delivered until an operator releases it. */
    held?: boolean;
  }
  | ({ ok: false } & IntakeRejection);

export interface IntakeDeps {
  kv: Deno.Kv;
  committer: Committer;
  hostname: string;
  maxMessageSize: number;
  bodyCache: BodyCache;
  signal: QueueSignal;
  log: Logger;
  now?: () => number;
  /** The account's suppression list: a listed recipient is recorded `suppressed`, not queued. */
  suppressions?: { reasonFor(account: string, address: string): string | null };
  /** The DKIM keys of `account` for mail whose From: domain is `fromDomain` ([] = do not sign). */
  dkimKeyFor?: (account: string, fromDomain: string) => Promise<DkimSigningKey[]>;
  /** Makes the signatures (core/mail/dkim_pool.ts); absent = on this thread. */
  dkimSignatures?: DkimSignatureMaker;
  /** VERP: each recipient's delivery leaves with its own return path at this bounce domain. */
  verp?: VerpConfig;
  /** Largest header section in bytes (Postfix header_size_limit). @default 102400 */
  maxHeaderSize?: number;
  /** Content filtering (core/content/gate.ts); absent = no scan. */
  contentFilter?: { scan(input: GateInput): Promise<ContentVerdict> };
  /** The sandbox: test mode and the simulator's addresses. */
  sandbox?: SandboxIntake;
}

export const DEFAULT_MAX_HEADER_SIZE = 102_400;

/** What one intake holds whatever its hold allows: the chunk being filled. */
export const INTAKE_WORKING_BYTES = CHUNK_SIZE;

/** The last `n` bytes held in `parts`, however they are spread over them. */
function lastBytes(parts: readonly Uint8Array[], n: number): Uint8Array {
  let held = 0;
  for (const part of parts) held += part.length;
  const out = new Uint8Array(Math.min(n, held));
  let o = out.length;
  for (let p = parts.length - 1; p >= 0 && o > 0; p--) {
    const part = parts[p]!;
    const k = Math.min(o, part.length);
    out.set(part.subarray(part.length - k), o - k);
    o -= k;
  }
  return out;
}

function concatParts(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const u8IndexOf = Uint8Array.prototype.indexOf;

function findHeaderEnd(buf: Uint8Array): number {
  // Uint8Array's own indexOf: SMTP chunks are node Buffers, whose indexOf is a polyfill in JS.
  for (let i = u8IndexOf.call(buf, 13); i >= 0 && i + 3 < buf.length;) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
    i = u8IndexOf.call(buf, 13, i + 1);
  }
  return -1;
}

/**
 * Where the blank line that ends the header section starts in `before` followed by `next`, as if
 * they were joined: without joining them, which copied every chunk of a header section once more.
 */
function headerEndAcross(before: Uint8Array, next: Uint8Array): number {
  if (before.length > 0) {
    const across = findHeaderEnd(concatParts([before, next.subarray(0, 3)]));
    if (across >= 0 && across < before.length) return across;
  }
  const at = findHeaderEnd(next);
  return at < 0 ? -1 : before.length + at;
}

export async function accept(deps: IntakeDeps, sub: Submission): Promise<IntakeResult> {
  const held: (() => void)[] = [];
  try {
    return await acceptHolding(deps, sub, held);
  } finally {
    for (const release of held) release();
  }
}

/** accept() proper; idempotency keys it holds go into `held` (released when it returns). */
async function acceptHolding(
  deps: IntakeDeps,
  sub: Submission,
  held: (() => void)[],
): Promise<IntakeResult> {
  const now = (deps.now ?? Date.now)();
  const id = newId(now);
  const writer = new ChunkWriter(
    deps.committer,
    id,
    deps.now,
    sub.memory,
    writableSpoolOf(deps.kv),
  );
  let rawBytes = 0;
  /**
   * Why the message is refused, once something refuses it; the rest of DATA is still drained so
   * the client reaches its end and hears the reply. Where two apply, the earlier in
   * REJECTION_PRECEDENCE is answered.
   */
  let rejected = null as IntakeRejection | null;
  const reject = (r: IntakeRejection) => {
    if (rejected === null || precedence(r) < precedence(rejected)) rejected = r;
  };
  // The header section is held until its blank line, as parts: instead of copying the whole
  // head again for each chunk (quadratic when a client trickles bytes), only the newest bytes
  // and the three before them are scanned, and the head is joined once.
  let headParts: Uint8Array[] | null = [];
  let headLength = 0;
  /** Bytes of the header section counted in the memory hold, given back once it is written. */
  let headHeld = 0;
  const maxHeaderSize = deps.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
  const findBare = sub.lineEndings === "reject" ? bareLineEndingFinder() : null;
  // What the finder lets through is CRLF-clean already (a message with a bare line ending is
  // refused), so it is taken as it is, without a copy; only HTTP uploads are repaired.
  const normalize = findBare !== null ? (bytes: Uint8Array) => bytes : crlfNormalizer();
  let headers = { messageId: "", subject: "" };
  let pool: string | undefined;
  // DKIM: the body is hashed as it streams past (never held whole); signed at the end.
  let signer = null as DkimSigner | null;
  let signedHead = "";
  // Idempotency is checked before anything is queued; the claim rides in the message commit.
  const lookup = async (key: string) => {
    held.push(await holdIdempotencyKey(sub.account, key));
    return lookupIdempotency(deps.kv, sub.account, key, now);
  };
  let idem = (sub.idempotencyKey ? await lookup(sub.idempotencyKey) : null) as
    | IdempotencyLookup
    | null;
  const tags = [...(sub.tags ?? [])];
  const test = sub.test === true ||
    (deps.sandbox ? await deps.sandbox.testMode(sub.account, sub.credentialId) : false);
  // Stats, search and webhooks tell test mail apart by its tag.
  if (test && !tags.includes("test")) tags.unshift("test");

  const trace = {
    heloName: sub.heloName,
    clientAddress: sub.clientAddress,
    hostname: deps.hostname,
    protocol: sub.protocol,
    queueId: id,
    now: new Date(now),
    ...(sub.recipients.length === 1 ? { singleRecipient: sub.recipients[0]! } : {}),
  };

  async function emitHead(headerBlock: Uint8Array, rest: Uint8Array) {
    const instructions = takePosternHeaders(headerBlock);
    for (const t of instructions.tags) {
      if (!tags.includes(t) && tags.length < MAX_TAGS) tags.push(t);
    }
    if (!idem && instructions.idempotencyKey) {
      idem = await lookup(instructions.idempotencyKey);
    }
    if (idem?.existing) return; // a repeat: the rest is drained, nothing is queued
    const done = completeHeaders(instructions.block, trace);
    // Only what the record needs is kept (not the block and its text, which can be large).
    headers = { messageId: done.messageId, subject: done.subject };
    pool = done.pool;
    if (sub.scope) {
      const refusal = await checkSendScope({ kv: deps.kv }, sub.scope, {
        headers: { ...done.senders, pool: done.pool },
      });
      if (refusal !== null) return reject({ reason: "scope", refusal });
    }
    const fromDomains = fromHeaderDomains(done.senders.from[0] ?? "");
    const dkimKeys = fromDomains[0] && deps.dkimKeyFor
      ? await deps.dkimKeyFor(sub.account, asciiDomain(fromDomains[0]))
      : [];
    if (dkimKeys.length > 0) {
      signer = new DkimSigner(dkimKeys, deps.dkimSignatures);
      signedHead = done.blockText;
    }
    writer.expect(done.block.length + rest.length);
    await writer.write(done.block);
    signer?.update(rest.subarray(2)); // the body starts after the blank line
    await writer.write(rest);
  }

  function releaseHead() {
    sub.memory?.shrink(headHeld);
    headHeld = 0;
  }

  try {
    for await (const raw of sub.body) {
      rawBytes += raw.length;
      if (rawBytes > deps.maxMessageSize) {
        reject({ reason: "too_large", limit: deps.maxMessageSize });
      }
      if (rejected !== null || idem?.existing) continue;
      const found = findBare?.(raw) ?? null;
      if (found !== null) {
        reject({ reason: "bare_line_ending", found });
        continue;
      }
      const norm = normalize(raw);
      if (headParts === null) {
        signer?.update(norm);
        await writer.write(norm);
        continue;
      }
      if (norm.length === 0) continue;
      if (headLength < 2) {
        // No header section at all: the body starts at once. (A CRLF may come split in two.)
        const start = headLength === 0 ? norm : concatParts([...headParts, norm]);
        if (start.length >= 2 && start[0] === 13 && start[1] === 10) {
          await emitHead(new Uint8Array(0), start);
          headParts = null;
          continue;
        }
      }
      const before = lastBytes(headParts, 3);
      const end = headerEndAcross(before, norm);
      // The working bytes cover a header section that fits in them (the chunk being filled is
      // still empty); a larger one must be held, or the message is refused.
      const needed = Math.max(0, headLength + norm.length - INTAKE_WORKING_BYTES) - headHeld;
      if (needed > 0) {
        if (sub.memory && !sub.memory.grow(needed)) {
          reject({ reason: "memory_busy" });
          headParts = null;
          continue;
        }
        headHeld += needed;
      }
      headParts.push(norm);
      if (end >= 0) {
        const cut = headLength - before.length + end + 2;
        if (cut > maxHeaderSize) {
          reject({ reason: "header_too_large", limit: maxHeaderSize });
        } else {
          // Most header sections arrive in one chunk: joined without a copy.
          const joined = headParts.length === 1 ? headParts[0]! : concatParts(headParts);
          await emitHead(joined.subarray(0, cut), joined.subarray(cut));
        }
        headParts = null;
        releaseHead();
        continue;
      }
      headLength += norm.length;
      if (headLength > maxHeaderSize) {
        reject({ reason: "header_too_large", limit: maxHeaderSize });
        headParts = null;
        releaseHead();
      }
    }
    const found = findBare?.(new Uint8Array(0), true) ?? null;
    if (found !== null) reject({ reason: "bare_line_ending", found });
    if (rejected === null && !idem?.existing) {
      const tail = normalize(new Uint8Array(0), true);
      if (headParts !== null) {
        if (headLength + tail.length > maxHeaderSize) {
          reject({ reason: "header_too_large", limit: maxHeaderSize });
        } // A message with no blank line is all header (RFC 5322 §3.5: the body is optional).
        else await emitHead(concatParts([...headParts, tail]), new Uint8Array([13, 10]));
      } else if (tail.length) {
        signer?.update(tail);
        await writer.write(tail);
      }
      await writer.finish();
    }
  } catch (err) {
    await writer.discard(deps.kv);
    return { ok: false, reason: "store_failed", error: (err as Error).message };
  }

  if (rejected !== null) {
    await writer.discard(deps.kv);
    return { ok: false, ...(rejected as IntakeRejection) };
  }
  if (idem?.existing) {
    await writer.discard(deps.kv);
    return repeatResult(idem.existing);
  }
  let signature = "";
  if (signer) {
    try {
      signature = await signer.sign(signedHead, new Date(now));
    } catch (err) {
      await writer.discard(deps.kv);
      deps.log.warn("dkim.sign_failed", { domain: signer.keys[0]!.domain, err });
      return { ok: false, reason: "signing_unavailable" };
    }
  }
  // The content scan sees the message as it will be sent, and answers before the 250.
  // (A DSN is the relay's own report, not a tenant's content.)
  const content = deps.contentFilter && sub.via !== "dsn"
    ? await deps.contentFilter.scan(scanInput(deps.kv, sub, id, signature, writer))
    : null;
  if (content?.action === "reject" || content?.action === "tempfail") {
    await writer.discard(deps.kv);
    return content.action === "reject"
      ? { ok: false, reason: "content_rejected", message: content.reason }
      : { ok: false, reason: "content_unavailable" };
  }
  const prefix = signature + (content?.action === "accept" ? content.headers : "");
  const hold: HoldRecord | null = content?.action === "hold"
    ? {
      msgId: id,
      account: sub.account,
      credentialId: sub.credentialId,
      score: content.score,
      symbols: content.symbols,
      heldAt: now,
      expiresAt: content.expiresAt,
    }
    : null;

  const totalChunks = writer.spooled ? 0 : writer.totalChunks;
  const msg: MessageRecord = {
    id,
    account: sub.account,
    mailFrom: sub.mailFrom,
    size: writer.size,
    chunks: totalChunks,
    ...(writer.spooled ? { spooled: true } : {}),
    recipients: sub.recipients.length,
    createdAt: now,
    credentialId: sub.credentialId,
    clientAddress: sub.clientAddress,
    via: sub.via,
    messageId: headers.messageId,
    subject: headers.subject,
    ...(prefix ? { prefix } : {}),
    ...(pool ? { pool } : {}),
    // The null sender stays null: a bounce must never cause another (RFC 5321 §4.5.5).
    ...(deps.verp && sub.mailFrom !== "" ? { verp: true } : {}),
    ...(tags.length ? { tags } : {}),
    ...(sub.metadata && Object.keys(sub.metadata).length ? { metadata: { ...sub.metadata } } : {}),
    ...(test ? { test: true } : {}),
  };
  const rows: RecipientRow[] = sub.recipients.map((rcpt, idx) => {
    const suppressed = deps.suppressions?.reasonFor(sub.account, rcpt) ??
      sandboxSuppression(deps.sandbox, deps.suppressions, sub.account, rcpt);
    return {
      msgId: id,
      idx,
      rcpt,
      domain: queueDomain(deps.sandbox, test, domainOf(rcpt)),
      status: suppressed !== null ? "suppressed" : hold ? "held" : "queued",
      attempts: 0,
      queuedAt: now,
      nextAttemptAt: suppressed === null && !hold ? now : null,
      ...(suppressed === null ? {} : {
        lastReply: `Not attempted: the address is on the suppression list (${suppressed})`,
        lastCategory: suppressed,
      }),
      updatedAt: now,
    };
  });
  // Suppressed recipients get no due entry, only their event.
  const suppressedEvents: MessageEvent[] = rows.filter((r) => r.status === "suppressed").map((
    r,
  ) => ({
    id: newId(now),
    msgId: id,
    type: "suppressed",
    at: now,
    rcpt: r.rcpt,
    reply: r.lastReply!,
    category: r.lastCategory!,
  }));
  const byDomain = new Map<string, number[]>();
  for (const row of rows) {
    if (row.status !== "queued") continue;
    const list = byDomain.get(row.domain) ?? [];
    list.push(row.idx);
    byDomain.set(row.domain, list);
  }
  const event: MessageEvent = { id: newId(now), msgId: id, type: "accepted", at: now };
  if (hold) {
    suppressedEvents.push({
      id: newId(now),
      msgId: id,
      type: "held",
      at: now,
      score: hold.score,
      symbols: hold.symbols,
    });
  }

  const inlineChunks = writer.chunks;
  const baseChunk = writer.written;
  const committed = await commitMessage(deps.committer, {
    msg,
    rows,
    byDomain,
    event,
    inlineChunks,
    baseChunk,
    staged: writer.staged,
    suppressedEvents,
    hold,
    ...(sub.alsoCommit ? { alsoCommit: sub.alsoCommit } : {}),
    idempotency: idem
      ? {
        lookup: idem,
        record: {
          id,
          at: now,
          ...(sub.idempotencyFingerprint ? { fingerprint: sub.idempotencyFingerprint } : {}),
        },
      }
      : null,
  }).catch((err: Error) => err);
  if (committed === null || committed instanceof Error) {
    await writer.discard(deps.kv);
    if (committed === null && idem) {
      // Our claim lost to a concurrent repeat: answer with the message that won.
      const winner = await lookupIdempotency(deps.kv, sub.account, idem.key[2] as string, now);
      if (winner.existing) return repeatResult(winner.existing);
    }
    return {
      ok: false,
      reason: "store_failed",
      error: committed instanceof Error ? committed.message : "commit failed",
    };
  }
  if (totalChunks > 0 && !writer.staged && !writer.spooled) {
    deps.bodyCache.put(id, concatChunks(inlineChunks));
  }
  const queued = rows.filter((r) => r.status === "queued");
  if (queued.length > 0) {
    deps.signal.notify({
      msg,
      rows: queued,
      versionstamp: committed.versionstamp,
      due: committed.due,
      staged: writer.staged,
    });
  }
  metrics.messagesAccepted.inc({ via: sub.via });
  return { ok: true, id, size: writer.size, ...(hold ? { held: true } : {}) };
}

/** What the content scan reads: the envelope, and the body streamed from where intake put it. */
function scanInput(
  kv: Deno.Kv,
  sub: Submission,
  id: string,
  signature: string,
  writer: ChunkWriter,
): GateInput {
  return {
    account: sub.account,
    mailFrom: sub.mailFrom,
    recipients: sub.recipients,
    clientAddress: sub.clientAddress,
    heloName: sub.heloName,
    user: sub.credentialId,
    queueId: id,
    // A staged body is all in KV already and is read back in batches, never joined.
    body: async function* () {
      if (signature) yield new TextEncoder().encode(signature);
      if (writer.staged || writer.spooled) yield* writer.readAhead(kv);
      else yield* writer.chunks;
    },
  };
}

function repeatResult(first: IdempotencyRecord): IntakeResult {
  return {
    ok: true,
    id: first.id,
    size: 0,
    duplicate: true,
    ...(first.fingerprint ? { firstFingerprint: first.fingerprint } : {}),
  };
}
