/**
 * The node-wide cap on outbound connections, on top of each site's own window: many recipient
 * domains can be hosted at one address under different MX names (so, different sites), and
 * without a cap their windows together could open thousands of connections to it.
 */
export class ConnectionCap {
  readonly limit: number;
  #open = 0;
  /** Sites refused a slot, woken when one frees. */
  #waiting = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  get open(): number {
    return this.#open;
  }

  /** Some site waits for a slot: an idle connection should give its own up. */
  get contended(): boolean {
    return this.#waiting.size > 0;
  }

  /** Takes a slot; when none is free, `wake` is called once one is. */
  tryAcquire(wake: () => void): boolean {
    if (this.#open < this.limit) {
      this.#open++;
      return true;
    }
    this.#waiting.add(wake);
    return false;
  }

  release() {
    this.#open--;
    // Every waiting site looks again; those that lose the race wait for the next slot.
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }
}
