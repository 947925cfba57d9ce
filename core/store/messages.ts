/**
 * The message commit: ONE commit makes the message record, its recipient rows, their due
 * entries and the `accepted` event visible together, and the chunk writer that puts a large
 * body ahead of it. Whatever is written ahead sits under a staged marker and stays inert until
 * the message record appears (core/store/queue.ts), so a failed commit leaves nothing half
 * visible; the sweeper removes what a crash leaves behind.
 */
import { keys } from "./keys.ts";
import type { Committer } from "./committer.ts";
import { addSizes, EMPTY_SIZE, fits, measureChange, setSize } from "./commit_size.ts";
import { CHUNK_SIZE, deleteBody } from "./bodies.ts";
import { dueGroups } from "./due_groups.ts";
import { putEvent } from "./events.ts";
import { StatTally } from "./stats.ts";
import { putMessageIndex, recipientIndexEntries } from "./message_index.ts";
import { claimIdempotency, type IdempotencyLookup, type IdempotencyRecord } from "./idempotency.ts";
import { countAccepted } from "./send_counts.ts";
import { type HoldRecord, putHold } from "./holds.ts";
import { type DueEntry, dueValue, markersDue, markersWritten } from "./queue.ts";
import { monotonicId } from "../ids.ts";
import type { MemoryHold } from "../policy/memory_budget.ts";
import { domainOf } from "../mail/address.ts";
import type { MessageEvent, MessageRecord, RecipientRow } from "../model.ts";

/** Bodies up to this size ride in the message commit; larger ones are written ahead, staged. */
const INLINE_BODY_LIMIT = 6 * CHUNK_SIZE;
/**
 * A body up to this size, in a message with one due entry, rides in that entry: written with it
 * and gone with its last delete, which saves the body's own set and delete (two of the dozen
 * mutations a small message costs). Larger bodies stay in chunks: due entries are listed in
 * batches, and a deferral rewrites the entry.
 */
const BODY_IN_DUE_LIMIT = 16 * 1024;
/** Chunks per staged commit (≤ 800 KB a commit). */
const STAGE_BATCH = 11;

/** Splits a byte stream into fixed-size chunks and decides when they must go to KV early. */
export class ChunkWriter {
  /** Chunks not yet written: they ride in the message commit. */
  chunks: Uint8Array[] = [];
  /** Chunks written ahead, under the staged marker. */
  written = 0;
  staged = false;
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

  constructor(
    private committer: Committer,
    private id: string,
    private now: () => number = Date.now,
    private memory?: MemoryHold,
  ) {}

  async write(bytes: Uint8Array) {
    this.size += bytes.length;
    let i = 0;
    while (i < bytes.length) {
      const n = Math.min(CHUNK_SIZE - this.#fill, bytes.length - i);
      this.#reserve(this.#fill + n);
      this.#current.set(bytes.subarray(i, i + n), this.#fill);
      this.#fill += n;
      i += n;
      if (this.#fill === CHUNK_SIZE) {
        this.chunks.push(this.#current);
        this.#current = new Uint8Array(CHUNK_SIZE);
        this.#fill = 0;
        if (!this.#hold()) {
          // The memory budget is spent: this body goes to the store as it arrives.
          while (this.chunks.length > 0) await this.#stage();
        } else if (this.chunks.length * CHUNK_SIZE > INLINE_BODY_LIMIT) await this.#stage();
      }
    }
  }

  finish() {
    if (this.#fill === 0) return;
    const c = this.#current;
    this.chunks.push(this.#fill === c.length ? c : c.slice(0, this.#fill));
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
    return this.written + this.chunks.length;
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

  /** Writes the pending chunks ahead of the message commit, under a staged marker. */
  async #stage() {
    if (!this.staged) {
      if (!(await stageMessage(this.committer, this.id, this.now()))) {
        throw new Error("staged marker commit failed");
      }
      this.staged = true;
    }
    while (this.chunks.length >= STAGE_BATCH || (this.chunks.length > 0 && this.staged)) {
      const batch = this.chunks.splice(0, STAGE_BATCH);
      const base = this.written;
      const ok = await this.committer.commit({
        apply: (op) => batch.forEach((c, j) => op.set(keys.body(this.id, base + j), c)),
      });
      if (!ok) throw new Error("staged chunk commit failed");
      this.written += batch.length;
      this.#unhold(batch.length);
      if (this.chunks.length < STAGE_BATCH) break;
    }
  }

  async flushRemainingIfStaged() {
    if (!this.staged) return;
    while (this.chunks.length > 0) await this.#stage();
  }
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
  type Piece = [Deno.KvKey, unknown];
  const pieces: Piece[] = [];
  const groups = [...m.byDomain].flatMap(([domain, idxs]) =>
    dueGroups(idxs).map((rcpts) => ({ domain, rcpts }))
  );
  const only = m.inlineChunks[0];
  const bodyInDue = groups.length === 1 && !m.staged && m.baseChunk === 0 &&
      m.inlineChunks.length === 1 && only !== undefined && only.length <= BODY_IN_DUE_LIMIT
    ? only
    : undefined;
  // The record handed to delivery in memory says so too.
  if (bodyInDue) msg.bodyInDue = true;
  else m.inlineChunks.forEach((c, j) => pieces.push([keys.body(msg.id, m.baseChunk + j), c]));
  for (const row of m.rows) pieces.push([keys.recipient(msg.id, row.idx), row]);
  /** The due entries by key, until the commit that writes each one is known. */
  const due = new Map<Deno.KvKey, Omit<DueEntry, "versionstamp">>();
  for (const { domain, rcpts: idxs } of groups) {
    const key = keys.due(domain, msg.createdAt, msg.id, idxs[0]!);
    due.set(key, {
      key,
      domain,
      dueAt: msg.createdAt,
      msgId: msg.id,
      rcpts: idxs,
      ...(bodyInDue ? { body: bodyInDue } : {}),
    });
    pieces.push([key, dueValue(idxs, bodyInDue)]);
  }
  // A domain's queue marker is rewritten only when this node's write of it is stale (queue.ts).
  const markers = markersDue(committer.kv, m.byDomain.keys(), msg.createdAt);
  for (const domain of markers) pieces.push([keys.queue(domain), { touchedAt: msg.createdAt }]);
  // Last, so they are the pieces most likely to stay in the message commit itself.
  for (const [key, value] of recipientIndexEntries(msg, m.rows)) pieces.push([key, value]);
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
    op.set(keys.message(msg.id), { ...msg, events: events.map((ev) => ev.id) });
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
  const wrote = (batch: readonly Piece[], versionstamp: string) => {
    for (const [key] of batch) {
      const entry = due.get(key);
      if (entry) written.push({ ...entry, versionstamp });
    }
  };
  // Sized as if staged: the marker's delete may yet join the message commit.
  const head = measureChange((op) => applyHead(op, true));
  const sizes = pieces.map(([k, v]) => setSize(k, v));
  const total = () => sizes.reduce(addSizes, head);
  // Write ahead what does not fit one commit. (What must ride in the message commit itself
  // stays: with nothing left to move, the commit is tried as it is and the committer refuses it
  // if it is still too large.)
  while (pieces.length > 0 && !fits(total())) {
    if (!staged) {
      if (!(await stageMessage(committer, msg.id, msg.createdAt))) return null;
      staged = true;
    }
    const batch: Piece[] = [];
    let batchSize = EMPTY_SIZE;
    while (pieces.length > 0 && fits(addSizes(batchSize, sizes[0]!))) {
      batch.push(pieces.shift()!);
      batchSize = addSizes(batchSize, sizes.shift()!);
    }
    const stamp = await committer.commit({
      apply: (op) => batch.forEach(([k, v]) => op.set(k, v)),
    });
    if (stamp === null) return null;
    wrote(batch, stamp);
  }
  const stamp = await committer.commit({
    apply(op) {
      applyHead(op, staged);
      for (const [k, v] of pieces) op.set(k, v);
    },
  });
  if (stamp === null) return null;
  markersWritten(committer.kv, markers, msg.createdAt);
  wrote(pieces, stamp);
  return { versionstamp: stamp, due: written, staged };
}

/** Removes what was written ahead of a message commit that did not happen. Best effort. */
export async function discardStaged(kv: Deno.Kv, id: string, chunks: number) {
  try {
    await deleteBody(kv, id, chunks);
    await kv.delete(keys.staged(id));
  } catch {
    // the sweeper will find the staged marker
  }
}
