/**
 * The memory budget: how many message bytes the relay holds in memory at once, in total and per
 * client address (POSTERN_MEMORY_BUDGET, POSTERN_MEMORY_BUDGET_PER_CLIENT). Intake and the HTTP
 * send path take a hold before they buffer and grow it as they buffer more; a hold that cannot
 * grow tells them to stream to the store instead, or to refuse (452 4.3.1 / 503). Without it, a
 * few parallel submissions held before their end could take a 1 GB host down.
 *
 * Pure accounting, no I/O; one instance per process.
 *
 * @module
 */

/** A client's claim on the budget; release it exactly once when the bytes are let go. */
export interface MemoryHold {
  /** Bytes held now. */
  readonly bytes: number;
  /** Holds `n` more bytes; false (and nothing changes) when that would pass a limit. */
  grow(n: number): boolean;
  /** Gives back `n` bytes (never more than held). */
  shrink(n: number): void;
  /** Gives back everything; later calls do nothing. */
  release(): void;
}

export class MemoryBudget {
  #used = 0;
  #byClient = new Map<string, number>();

  /**
   * @param total bytes held at once over all clients
   * @param perClient bytes one client address may hold at once (at most `total`)
   */
  constructor(readonly total: number, readonly perClient: number) {}

  /** Bytes held now, over all clients. */
  get used(): number {
    return this.#used;
  }

  /** Bytes `client` holds now. */
  heldBy(client: string): number {
    return this.#byClient.get(client) ?? 0;
  }

  /** A hold of `bytes` for `client`, or null when that would pass the total or its share. */
  hold(client: string, bytes = 0): MemoryHold | null {
    if (!this.#take(client, bytes)) return null;
    let held = bytes;
    let released = false;
    return {
      get bytes() {
        return held;
      },
      grow: (n) => {
        if (released || !this.#take(client, n)) return false;
        held += n;
        return true;
      },
      shrink: (n) => {
        const back = Math.min(Math.max(0, n), held);
        held -= back;
        this.#give(client, back);
      },
      release: () => {
        if (released) return;
        released = true;
        this.#give(client, held);
        held = 0;
      },
    };
  }

  #take(client: string, n: number): boolean {
    const mine = this.heldBy(client);
    if (n > 0 && (this.#used + n > this.total || mine + n > this.perClient)) return false;
    this.#used += n;
    this.#byClient.set(client, mine + n);
    return true;
  }

  #give(client: string, n: number) {
    this.#used -= n;
    const left = this.heldBy(client) - n;
    if (left <= 0) this.#byClient.delete(client);
    else this.#byClient.set(client, left);
  }
}
