/**
 * The message commit: ONE commit makes the message record, its recipient rows, their due
 * entries and the `accepted` event visible together, and the chunk writer that puts a large
 * body ahead of it. Whatever is written ahead sits under a staged marker (or, a body, in a spool
 * file no record names yet) and stays inert until the message record appears
 * (core/store/queue.ts), so a failed commit leaves nothing half visible; the sweeper removes what
 * a crash leaves behind.
 */
import { keys } from "./keys.ts";
import type { Committer } from "./committer.ts";
import { measureChange } from "./commit_size.ts";
import { CommitChecksFailed, type CommitFn, MeteredAtomic, MeteredWriter } from "./metered.ts";
import { CHUNK_SIZE, deleteBody, readBody } from "./bodies.ts";
import type { BodySpool, SpoolFile } from "./body_spool.ts";
import { dueEntries, type FiledDue, MAX_RECIPIENTS_PER_DUE } from "./due_groups.ts";
import { putEvent } from "./events.ts";
import { StatTally } from "./stats.ts";
import { putMessageIndex, recipientIndexEntries } from "./message_index.ts";
import { claimIdempotency, type IdempotencyLookup, type IdempotencyRecord } from "./idempotency.ts";
import { countAccepted } from "./send_counts.ts";
import { type HoldRecord, putHold } from "./holds.ts";
import { type DueEntry, dueValue, markersDue, markersWritten } from "./queue.ts";
import { storedMessage, storedRow } from "./records.ts";
import { monotonicId } from "../ids.ts";
import type { MemoryHold } from "../policy/memory_budget.ts";
import { domainOf } from "../mail/address.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "../model.ts";

/** Bodies up to this size ride in the message commit; larger ones are written ahead. */
const INLINE_BODY_LIMIT = 6 * CHUNK_SIZE;
/**
 * A body up to this size, in a message with one due entry, rides in that entry: written with it
 * and gone with its last delete, which saves the body's own set and delete (two of the dozen
 * mutations a small message costs). Larger bodies stay in chunks: due entries are listed in
 * batches, and a deferral rewrites the entry.
 */
const BODY_IN_DUE_LIMIT = 16 * 1024;
/**
 * The bytes of a row (key, value and SQLite's own columns) that Deno KV's SQLite table keeps in
 * its B-tree page before the rest goes to overflow pages: ~487 at its 2 KiB pages
 * (docs/ARCHITECTURE.md, "Store facts and limits").
 */
const ROW_ROOM = 480;

/**
 * Splits a byte stream into fixed-size chunks and decides when they must leave memory early: a
 * body past INLINE_BODY_LIMIT (or one the memory budget cannot hold) goes to the store's spool
 * file as it arrives when the store has a spool, else to KV chunks under the staged marker.
 */
export class ChunkWriter {
  /** Chunks not yet written: they ride in the message commit. */
  chunks: Uint8Array[] = [];
  /** Chunks committed to KV ahead of the message commit, under the staged marker. */
  written = 0;
  staged = false;
  /** The body file in the spool, once the body went there. */
  #spooled: SpoolFile | null = null;
  size = 0;
  /**
   * The chunk being filled. The first grows by doubling, so a small body never allocates (and
   * zeroes) a whole 63 KB chunk: that was 4 % of the main thread at 2 KB messages. Once a body
   * has filled a chunk, the next ones are allocated whole.
   */
  #current = new Uint8Array(0);
  #fill = 0;
  /** Full chunks in `chunks` whose bytes the memory hold counts. */
  #counted = 0;
  #ahead: MeteredWriter | null = null;

  constructor(
    private committer: Committer,
    private id: string,
    private now: () => number = Date.now,
    private memory?: MemoryHold,
    private spool: BodySpool | null = null,
  ) {}

  /** The body is a spool file, not KV chunks. */
  get spooled(): boolean {
    return this.#spooled !== null;
  }

  async write(bytes: Uint8Array) {
    this.size += bytes.length;
    let i = 0;
    while (i < bytes.length) {
      const n = Math.min(CHUNK_SIZE - this.#fill, bytes.length - i);
      this.#reserve(this.#fill + n);
      this.#current.set(bytes.subarray(i, i + n), this.#fill);
      this.#fill += n;
      i += n;
      if (this.#fill < CHUNK_SIZE) continue;
      if (this.#spooled) {
        // Written at once; the buffer is reused, so a large body costs one copy per byte.
        this.#spooled.write(this.#current);
        this.#fill = 0;
        continue;
      }
      this.chunks.push(this.#current);
      this.#current = new Uint8Array(CHUNK_SIZE);
      this.#fill = 0;
      if (!this.#hold()) {
        // The memory budget is spent: this body goes to the store as it arrives.
        await this.#goAhead();
      } else if (this.chunks.length * CHUNK_SIZE > INLINE_BODY_LIMIT) await this.#goAhead();
    }
  }

  /**
   * Says `bytes` more are about to be written: an empty chunk being filled is sized to hold just
   * them (up to CHUNK_SIZE), so a body written whole needs neither the doubling nor a copy cut to
   * its length at the end.
   */
  expect(bytes: number) {
    if (this.#fill === 0 && this.#current.length < bytes && !this.#spooled) {
      this.#current = new Uint8Array(Math.min(CHUNK_SIZE, bytes));
    }
  }

  /** Makes the chunk being filled hold at least `bytes` (at most CHUNK_SIZE). */
  #reserve(bytes: number) {
    const c = this.#current;
    if (bytes <= c.length) return;
    const next = new Uint8Array(Math.min(CHUNK_SIZE, Math.max(bytes, 2 * c.length, 4096)));
    next.set(c.subarray(0, this.#fill));
    this.#current = next;
  }

  /** Every chunk of the body, written ahead or not. */
  get totalChunks(): number {
    return this.written + (this.#ahead?.pending ?? 0) + this.chunks.length;
  }

  /** Counts the newest full chunk in the memory hold; false when the hold cannot grow. */
  #hold(): boolean {
    if (!this.memory) return true;
    if (!this.memory.grow(CHUNK_SIZE)) return false;
    this.#counted++;
    return true;
  }

  /** Gives back the hold on `n` chunks that left memory for the store. */
  #unhold(n: number) {
    const back = Math.min(n, this.#counted);
    this.#counted -= back;
    this.memory?.shrink(back * CHUNK_SIZE);
  }

  /** Moves the pending chunks out of memory: to the spool file, or KV under the staged marker. */
  async #goAhead() {
    const pending = this.chunks.splice(0);
    if (this.spool) {
      this.#spooled ??= this.spool.create(this.id);
      for (const c of pending) this.#spooled.write(c);
      this.#unhold(pending.length);
      return;
    }
    if (!this.staged) {
      if (!(await stageMessage(this.committer, this.id, this.now()))) {
        throw new Error("staged marker commit failed");
      }
      this.staged = true;
    }
    this.#ahead ??= new MeteredWriter(committerCommit(this.committer), (mutations) => {
      this.written += mutations.length;
      this.#unhold(mutations.length);
    });
    for (const c of pending) await this.#ahead.set(keys.body(this.id, this.totalChunks), c);
  }

  /**
   * Ends the body. A body that went ahead is completed there and made durable (the spool file
   * synced, the last KV chunks committed): only then may the message commit refer to it.
   */
  async finish() {
    const c = this.#current;
    const tail = this.#fill === 0 ? null : this.#fill === c.length ? c : c.slice(0, this.#fill);
    this.#fill = 0;
    if (this.#spooled) {
      if (tail) this.#spooled.write(tail);
      this.chunks = [];
      await this.#spooled.finish();
      return;
    }
    if (tail) this.chunks.push(tail);
    if (this.staged) {
      await this.#goAhead();
      await this.#ahead!.flush();
    }
  }

  /** Streams what was written ahead (for the content scan, before the message commit). */
  readAhead(kv: Deno.Kv): AsyncGenerator<Uint8Array> {
    return readBody(kv, {
      id: this.id,
      chunks: this.written,
      ...(this.spooled ? { spooled: true } : {}),
    });
  }

  /** Removes what went ahead of a message commit that will not happen. Best effort. */
  async discard(kv: Deno.Kv) {
    try {
      if (this.#spooled) this.#spooled.discard();
      if (this.staged) {
        await deleteBody(kv, { id: this.id, chunks: this.totalChunks });
        await kv.delete(keys.staged(this.id));
      }
    } catch {
      // the sweeper will find the staged marker or the unnamed spool file
    }
  }
}

/** The group committer as a metered writer's commit. */
function committerCommit(committer: Committer): CommitFn {
  return (apply) => committer.commit({ apply });
}

/** Marks a message as being written ahead of its commit (the sweeper's clue after a crash). */
async function stageMessage(committer: Committer, id: string, at: number): Promise<boolean> {
  const stamp = await committer.commit({
    apply: (op) => op.set(keys.staged(id), { createdAt: at }),
  });
  return stamp !== null;
}

export interface MessageCommit {
  msg: MessageRecord;
  rows: RecipientRow[];
  /** The queued recipients' indexes by the domain they are queued under. */
  byDomain: Map<string, number[]>;
  event: MessageEvent;
  /** The body's chunks not written ahead, from chunk number `baseChunk` on. */
  inlineChunks: Uint8Array[];
  baseChunk: number;
  staged: boolean;
  suppressedEvents: MessageEvent[];
  /** Held by the content scan: the hold record rides in the message commit. */
  hold?: HoldRecord | null;
  alsoCommit?: (op: Deno.AtomicOperation) => void;
  idempotency: { lookup: IdempotencyLookup; record: IdempotencyRecord } | null;
}

export interface CommittedMessage {
  /** Versionstamp of the message commit itself. */
  versionstamp: string;
  /** Every due entry written, each with the versionstamp of the commit that wrote it. */
  due: DueEntry[];
  /** Something was written ahead under the staged marker (a large body or recipient list). */
  staged: boolean;
}

/**
 * Commits a message. Rows and due entries normally ride in the message commit. A message with so
 * many recipients that they overflow one commit (the limits in commit_size.ts: a remote store's
 * are the tightest) writes them ahead under the staged marker. Null when a check failed (an
 * idempotency claim lost, say); a failure of the store rejects.
 */
export async function commitMessage(
  committer: Committer,
  m: MessageCommit,
): Promise<CommittedMessage | null> {
  const { msg } = m;
  const pieces: Deno.KvMutation[] = [];
  const piece = (key: Deno.KvKey, value: unknown) => pieces.push({ type: "set", key, value });
  const groups = [...m.byDomain].map(([domain, idxs]) => ({ domain, idxs }));
  const only = m.inlineChunks[0];
  const bodyInDue = groups.length === 1 && groups[0]!.idxs.length <= MAX_RECIPIENTS_PER_DUE &&
      !m.staged && m.baseChunk === 0 && m.inlineChunks.length === 1 && only !== undefined &&
      only.length <= BODY_IN_DUE_LIMIT
    ? only
    : undefined;
  // The record handed to delivery in memory says so too.
  if (bodyInDue) msg.bodyInDue = true;
  else m.inlineChunks.forEach((c, j) => piece(keys.body(msg.id, m.baseChunk + j), c));
  // The prefix (a signed message's DKIM-Signature) rides with a body in its due entry when that
  // body alone is past the room a row has in its B-tree page: the entry has overflow pages anyway
  // and leaves the store at delivery. In the record, which stays for retention, it pushed the
  // record past that room, and every signed message wrote an overflow page more (bench/README.md,
  // "Where DKIM signing runs"). Beside a smaller body either place costs the prefix one overflow
  // page, and the record keeps it.
  const duePrefix = bodyInDue && bodyInDue.length >= ROW_ROOM ? msg.prefix : undefined;
  for (const row of m.rows) piece(keys.recipient(msg.id, row.idx), storedRow(row));
  /** The due entries by key, until the commit that writes each one is known. */
  const due = new Map<Deno.KvKey, FiledDue>();
  for (const { domain, idxs } of groups) {
    for (const entry of dueEntries(domain, msg.createdAt, msg.id, idxs, bodyInDue, duePrefix)) {
      due.set(entry.key, entry);
      piece(entry.key, dueValue(entry.rcpts, entry.body, entry.prefix));
    }
  }
  // A domain's queue marker is rewritten only when this node's write of it is stale (queue.ts).
  const markers = markersDue(committer.kv, m.byDomain.keys(), msg.createdAt);
  for (const domain of markers) piece(keys.queue(domain), { touchedAt: msg.createdAt });
  // Last, so they are the pieces most likely to stay in the message commit itself.
  for (const [key, value] of recipientIndexEntries(msg, m.rows)) piece(key, value);
  // Events, counters and the other index entries must land with the message, never ahead of it.
  const tally = new StatTally();
  tally.add(msg.account, "accepted", msg.createdAt, {
    count: m.rows.length,
    ...(msg.tags ? { tags: msg.tags } : {}),
  });
  for (const ev of m.suppressedEvents) {
    if (ev.type !== "suppressed") continue;
    tally.add(msg.account, "suppressed", ev.at, {
      domain: domainOf(ev.rcpt ?? ""),
      ...(msg.tags ? { tags: msg.tags } : {}),
    });
  }
  let staged = m.staged;
  const applyHead = (op: Deno.AtomicOperation, withStagedMarker: boolean) => {
    // Event ids are taken now, as the commit is built (core/store/events.ts says why); the
    // record lists them, which is how the message's timeline finds them.
    const events = [m.event, ...m.suppressedEvents].map((ev) => ({ ...ev, id: monotonicId() }));
    for (const ev of events) putEvent(op, msg.account, ev);
    const record = storedMessage({ ...msg, events: events.map((ev) => ev.id) });
    if (duePrefix) delete record.prefix; // `prefix` keeps its name when stored (records.ts)
    op.set(keys.message(msg.id), record);
    tally.apply(op);
    putMessageIndex(op, msg);
    if (m.idempotency) claimIdempotency(op, m.idempotency.lookup, m.idempotency.record);
    if (m.hold) putHold(op, m.hold);
    if (withStagedMarker) op.delete(keys.staged(msg.id));
    // Test mode never counts against the daily quota.
    if (msg.credentialId && !msg.test) {
      countAccepted(op, msg.credentialId, msg.createdAt, msg.recipients);
    }
    m.alsoCommit?.(op);
  };
  const written: DueEntry[] = [];
  const wrote = (batch: readonly Deno.KvMutation[], versionstamp: string) => {
    for (const { key } of batch) {
      const entry = due.get(key);
      if (entry) written.push({ ...entry, versionstamp });
    }
  };
  // The message commit keeps the head and as many of the last pieces as fit beside it (sized as
  // if staged: the marker's delete may yet join it); the pieces before them are written ahead,
  // in as few commits as fit. (With nothing left to move, the commit is tried as it is and the
  // committer refuses it if the head alone is too large.)
  const last = new MeteredAtomic(undefined, measureChange((op) => applyHead(op, true)));
  let cut = pieces.length;
  while (cut > 0 && last.tryAdd(pieces[cut - 1]!)) cut--;
  if (cut > 0) {
    if (!staged) {
      if (!(await stageMessage(committer, msg.id, msg.createdAt))) return null;
      staged = true;
    }
    const ahead = new MeteredWriter(committerCommit(committer), wrote);
    try {
      for (const p of pieces.slice(0, cut)) await ahead.add(p);
      await ahead.flush();
    } catch (err) {
      if (err instanceof CommitChecksFailed) return null;
      throw err;
    }
  }
  const stamp = await committer.commit({
    apply(op) {
      applyHead(op, staged);
      last.apply(op);
    },
    // Measured above with the staged marker's delete: at least what this adds.
    size: last.size,
  });
  if (stamp === null) return null;
  markersWritten(committer.kv, markers, msg.createdAt);
  wrote(last.mutations, stamp);
  return { versionstamp: stamp, due: written, staged };
}
