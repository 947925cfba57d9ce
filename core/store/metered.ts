/**
 * Commits sized as they are built. A {@linkcode MeteredAtomic} counts each mutation's checks,
 * mutations and bytes (commit_size.ts) as it is added and refuses the one that would pass a KV
 * limit; a {@linkcode MeteredWriter} sends its commit at that point and starts the next, so a run
 * of independent writes (a body's chunks, rows written ahead, deletes) takes as few commits as
 * the store allows, with no batch sizes tuned by hand.
 */
import {
  addSizes,
  COMMIT_BUDGET,
  type CommitSize,
  EMPTY_SIZE,
  fits,
  keySize,
  setSize,
} from "./commit_size.ts";

/** Mutations gathered for one commit, their size counted as each is added. */
export class MeteredAtomic {
  readonly mutations: Deno.KvMutation[] = [];
  #size: CommitSize;

  /** `reserved`: room kept for what the commit will also carry (its own checks, say). */
  constructor(private budget: CommitSize = COMMIT_BUDGET, reserved: CommitSize = EMPTY_SIZE) {
    this.#size = reserved;
  }

  get size(): CommitSize {
    return this.#size;
  }

  /** Adds `mutation` if the commit still fits the budget with it; false (nothing added) if not. */
  tryAdd(mutation: Deno.KvMutation): boolean {
    const grown = addSizes(this.#size, mutationSize(mutation));
    if (!fits(grown, this.budget)) return false;
    this.mutations.push(mutation);
    this.#size = grown;
    return true;
  }

  /** Adds every mutation gathered to `op`. */
  apply(op: Deno.AtomicOperation) {
    if (this.mutations.length > 0) op.mutate(...this.mutations);
  }
}

/** What one mutation adds to a commit, as Deno's client counts it. */
export function mutationSize(m: Deno.KvMutation): CommitSize {
  if (m.type === "delete") {
    return { checks: 0, mutations: 1, payloadBytes: keySize(m.key), keyBytes: 0 };
  }
  return setSize(m.key, m.type === "set" ? m.value : m.value);
}

/** A commit of a metered writer failed its checks. */
export class CommitChecksFailed extends Error {
  override name = "CommitChecksFailed";
  constructor() {
    super("a metered commit failed its checks");
  }
}

/** Sends one commit: its versionstamp, or null when a check failed. */
export type CommitFn = (apply: (op: Deno.AtomicOperation) => void) => Promise<string | null>;

/** A commit straight to `kv` (for work outside the group committer, such as clean-up). */
export function directCommit(kv: Deno.Kv): CommitFn {
  return async (apply) => {
    const op = kv.atomic();
    apply(op);
    const res = await op.commit();
    return res.ok ? res.versionstamp : null;
  };
}

/**
 * Independent writes in as few commits as KV's limits allow: each commit is sent when the next
 * mutation would not fit it, and by {@linkcode flush}. `committed` hears what each commit wrote.
 */
export class MeteredWriter {
  #current: MeteredAtomic;

  constructor(
    private commit: CommitFn,
    private committed?: (mutations: readonly Deno.KvMutation[], versionstamp: string) => void,
    private budget: CommitSize = COMMIT_BUDGET,
  ) {
    this.#current = new MeteredAtomic(budget);
  }

  set(key: Deno.KvKey, value: unknown): Promise<void> {
    return this.add({ type: "set", key, value });
  }

  delete(key: Deno.KvKey): Promise<void> {
    return this.add({ type: "delete", key });
  }

  async add(mutation: Deno.KvMutation) {
    if (this.#current.tryAdd(mutation)) return;
    await this.flush();
    if (!this.#current.tryAdd(mutation)) {
      throw new Error(`A mutation of ${String(mutation.key)} does not fit in one commit`);
    }
  }

  /** Mutations added but not yet committed. */
  get pending(): number {
    return this.#current.mutations.length;
  }

  /** Commits what was added since the last commit; throws when the commit's checks fail. */
  async flush() {
    const batch = this.#current;
    if (batch.mutations.length === 0) return;
    this.#current = new MeteredAtomic(this.budget);
    const stamp = await this.commit((op) => batch.apply(op));
    if (stamp === null) throw new CommitChecksFailed();
    this.committed?.(batch.mutations, stamp);
  }
}
