/**
 * accept(submission): the one door into the queue for SMTP and HTTP alike.
 * Normalise line endings → complete headers → chunk the body → ONE commit that makes the message,
 * its recipient rows, their due entries and the `accepted` event visible together. The caller
 * answers 250 only after this resolves ok; on failure nothing half-written is visible, because
 * due entries and rows are only acted on once their message record exists.
 */
import type { Committer } from "./store/committer.ts";
import { keys } from "./store/keys.ts";
import { CHUNK_SIZE, concatChunks, deleteBody } from "./store/bodies.ts";
import type { BodyCache } from "./store/body_cache.ts";
import { crlfNormalizer } from "./mail/line_endings.ts";
import { completeHeaders } from "./mail/headers.ts";
import { domainOf } from "./mail/address.ts";
import { newId } from "./ids.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "./model.ts";
import type { QueueSignal } from "./queue_signal.ts";
import type { Logger } from "./log.ts";

export interface Submission {
  account: string;
  credentialId: string | null;
  mailFrom: string;
  recipients: readonly string[];
  clientAddress: string;
  heloName: string;
  /** RFC 3848 protocol name for the Received header. */
  protocol: string;
  via: "smtp" | "http";
  body: AsyncIterable<Uint8Array>;
}

export type IntakeResult =
  | { ok: true; id: string; size: number }
  | { ok: false; reason: "too_large"; limit: number }
  | { ok: false; reason: "store_failed"; error: string };

export interface IntakeDeps {
  kv: Deno.Kv;
  committer: Committer;
  hostname: string;
  maxMessageSize: number;
  bodyCache: BodyCache;
  signal: QueueSignal;
  log: Logger;
  now?: () => number;
}

/** Bodies up to this size ride in the final commit; larger ones are written ahead, staged. */
const INLINE_BODY_LIMIT = 6 * CHUNK_SIZE;
/** Chunks per staged commit (≤ 800 KB a commit). */
const STAGE_BATCH = 11;

function findHeaderEnd(buf: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** Splits a byte stream into fixed-size chunks and decides when they must go to KV early. */
class ChunkWriter {
  chunks: Uint8Array[] = [];
  written = 0;
  staged = false;
  size = 0;
  #current = new Uint8Array(CHUNK_SIZE);
  #fill = 0;

  constructor(private deps: IntakeDeps, private id: string) {}

  async write(bytes: Uint8Array) {
    this.size += bytes.length;
    let i = 0;
    while (i < bytes.length) {
      const n = Math.min(CHUNK_SIZE - this.#fill, bytes.length - i);
      this.#current.set(bytes.subarray(i, i + n), this.#fill);
      this.#fill += n;
      i += n;
      if (this.#fill === CHUNK_SIZE) {
        this.chunks.push(this.#current);
        this.#current = new Uint8Array(CHUNK_SIZE);
        this.#fill = 0;
        if (this.chunks.length * CHUNK_SIZE > INLINE_BODY_LIMIT) await this.#stage();
      }
    }
  }

  finish() {
    if (this.#fill > 0) this.chunks.push(this.#current.slice(0, this.#fill));
  }

  /** Writes the pending chunks ahead of the message commit, under a staged marker. */
  async #stage() {
    const { committer } = this.deps;
    if (!this.staged) {
      const at = (this.deps.now ?? Date.now)();
      await committer.commit({
        apply: (op) => op.set(keys.staged(this.id), { createdAt: at }),
        bytes: 100,
        mutations: 1,
      });
      this.staged = true;
    }
    while (this.chunks.length >= STAGE_BATCH || (this.chunks.length > 0 && this.staged)) {
      const batch = this.chunks.splice(0, STAGE_BATCH);
      const base = this.written;
      const ok = await committer.commit({
        apply: (op) => batch.forEach((c, j) => op.set(keys.body(this.id, base + j), c)),
        bytes: batch.length * (CHUNK_SIZE + 64),
        mutations: batch.length,
      });
      if (!ok) throw new Error("staged chunk commit failed");
      this.written += batch.length;
      if (this.chunks.length < STAGE_BATCH) break;
    }
  }

  async flushRemainingIfStaged() {
    if (!this.staged) return;
    while (this.chunks.length > 0) await this.#stage();
  }
}

export async function accept(deps: IntakeDeps, sub: Submission): Promise<IntakeResult> {
  const now = (deps.now ?? Date.now)();
  const id = newId(now);
  const normalize = crlfNormalizer();
  const writer = new ChunkWriter(deps, id);
  let rawBytes = 0;
  let tooLarge = false;
  let head: Uint8Array | null = new Uint8Array(0) as Uint8Array;
  let headers = { messageId: "", subject: "" };

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
    const done = completeHeaders(headerBlock, trace);
    headers = done;
    await writer.write(done.block);
    await writer.write(rest);
  }

  try {
    for await (const raw of sub.body) {
      rawBytes += raw.length;
      if (tooLarge || rawBytes > deps.maxMessageSize) {
        tooLarge = true;
        continue; // keep draining so the client reaches the end of DATA and hears 552
      }
      const norm = normalize(raw);
      if (head === null) {
        await writer.write(norm);
        continue;
      }
      const scanFrom = head.length - 3;
      const joined: Uint8Array = new Uint8Array(head.length + norm.length);
      joined.set(head);
      joined.set(norm, head.length);
      if (joined.length >= 2 && joined[0] === 13 && joined[1] === 10) {
        // No header section at all: the body starts at once.
        await emitHead(new Uint8Array(0), joined);
        head = null;
        continue;
      }
      const end = findHeaderEnd(joined, scanFrom);
      if (end >= 0) {
        await emitHead(joined.subarray(0, end + 2), joined.subarray(end + 2));
        head = null;
      } else {
        head = joined;
      }
    }
    if (!tooLarge) {
      const tail = normalize(new Uint8Array(0), true);
      if (head !== null) {
        const all = new Uint8Array(head.length + tail.length);
        all.set(head);
        all.set(tail, head.length);
        // A message with no blank line is all header (RFC 5322 §3.5: the body is optional).
        await emitHead(all, new Uint8Array([13, 10]));
      } else if (tail.length) {
        await writer.write(tail);
      }
      writer.finish();
      await writer.flushRemainingIfStaged();
    }
  } catch (err) {
    await discardStaged(deps.kv, id, writer.written + writer.chunks.length);
    return { ok: false, reason: "store_failed", error: (err as Error).message };
  }

  if (tooLarge) {
    await discardStaged(deps.kv, id, writer.written);
    return { ok: false, reason: "too_large", limit: deps.maxMessageSize };
  }

  const totalChunks = writer.written + writer.chunks.length;
  const msg: MessageRecord = {
    id,
    account: sub.account,
    mailFrom: sub.mailFrom,
    size: writer.size,
    chunks: totalChunks,
    recipients: sub.recipients.length,
    createdAt: now,
    credentialId: sub.credentialId,
    clientAddress: sub.clientAddress,
    via: sub.via,
    messageId: headers.messageId,
    subject: headers.subject,
  };
  const rows: RecipientRow[] = sub.recipients.map((rcpt, idx) => ({
    msgId: id,
    idx,
    rcpt,
    domain: domainOf(rcpt),
    status: "queued",
    attempts: 0,
    queuedAt: now,
    nextAttemptAt: now,
    updatedAt: now,
  }));
  const byDomain = new Map<string, number[]>();
  for (const row of rows) {
    const list = byDomain.get(row.domain) ?? [];
    list.push(row.idx);
    byDomain.set(row.domain, list);
  }
  const event: MessageEvent = { id: newId(now), msgId: id, type: "accepted", at: now };

  const inlineChunks = writer.chunks;
  const baseChunk = writer.written;
  const stamp = await commitMessage(deps, {
    msg,
    rows,
    byDomain,
    event,
    inlineChunks,
    baseChunk,
    staged: writer.staged,
  }).catch((err: Error) => err);
  if (typeof stamp !== "string") {
    await discardStaged(deps.kv, id, totalChunks);
    return {
      ok: false,
      reason: "store_failed",
      error: stamp instanceof Error ? stamp.message : "commit failed",
    };
  }
  if (totalChunks > 0 && !writer.staged) deps.bodyCache.put(id, concatChunks(inlineChunks));
  deps.signal.notify({ msg, rows, versionstamp: stamp, staged: writer.staged });
  return { ok: true, id, size: writer.size };
}

interface MessageCommit {
  msg: MessageRecord;
  rows: RecipientRow[];
  byDomain: Map<string, number[]>;
  event: MessageEvent;
  inlineChunks: Uint8Array[];
  baseChunk: number;
  staged: boolean;
}

/**
 * Rows and due entries normally ride in the message commit. A message with so many recipients
 * that they overflow one commit writes them ahead under the staged marker; they stay inert
 * until the message record appears.
 */
async function commitMessage(deps: IntakeDeps, m: MessageCommit): Promise<string | null> {
  const { committer } = deps;
  const { msg } = m;
  type Piece = [Deno.KvKey, unknown, number];
  const pieces: Piece[] = [];
  m.inlineChunks.forEach((c, j) =>
    pieces.push([keys.body(msg.id, m.baseChunk + j), c, c.length + 64])
  );
  for (const row of m.rows) {
    pieces.push([keys.recipient(msg.id, row.idx), row, 200 + row.rcpt.length]);
  }
  for (const [domain, idxs] of m.byDomain) {
    pieces.push([
      keys.due(domain, msg.createdAt, msg.id, 0),
      { rcpts: idxs },
      100 + idxs.length * 4,
    ]);
    pieces.push([keys.queue(domain), { touchedAt: msg.createdAt }, 64 + domain.length]);
  }
  const headBytes = 600 + msg.mailFrom.length + msg.subject.length + msg.messageId.length;
  let bytes = headBytes + pieces.reduce((s, p) => s + p[2], 0);
  let staged = m.staged;
  // Write ahead what does not fit one commit (limits from ARCHITECTURE.md, with headroom).
  while (pieces.length + 3 > 900 || bytes > 700_000) {
    if (!staged) {
      const ok = await committer.commit({
        apply: (op) => op.set(keys.staged(msg.id), { createdAt: msg.createdAt }),
        bytes: 100,
        mutations: 1,
      });
      if (!ok) return null;
      staged = true;
    }
    const batch: Piece[] = [];
    let batchBytes = 0;
    while (pieces.length > 0 && batch.length < 800 && batchBytes + pieces[0]![2] < 700_000) {
      const p = pieces.shift()!;
      batch.push(p);
      batchBytes += p[2];
    }
    bytes -= batchBytes;
    const ok = await committer.commit({
      apply: (op) => batch.forEach(([k, v]) => op.set(k, v)),
      bytes: batchBytes,
      mutations: batch.length,
    });
    if (!ok) return null;
  }
  return committer.commit({
    apply(op) {
      op.set(keys.message(msg.id), msg);
      op.set(keys.event(msg.id, m.event.id), m.event);
      for (const [k, v] of pieces) op.set(k, v);
      if (staged) op.delete(keys.staged(msg.id));
    },
    bytes,
    mutations: pieces.length + 3,
  });
}

/** Best effort; the sweeper removes whatever a crash leaves behind. */
async function discardStaged(kv: Deno.Kv, id: string, chunks: number) {
  try {
    await deleteBody(kv, id, chunks);
    await kv.delete(keys.staged(id));
  } catch {
    // the sweeper will find the staged marker
  }
}
