/**
 * Bodies handed from intake to delivery in memory. Reading a body back from KV right after
 * writing it cost a quarter of the throughput (docs/ARCHITECTURE.md); KV stays the source of truth
 * for retries and restarts. Bounded by total bytes, oldest out first.
 */
export class BodyCache {
  #entries = new Map<string, Uint8Array>();
  #bytes = 0;
  #maxBytes: number;

  constructor(maxBytes = 64 * 1024 * 1024) {
    this.#maxBytes = maxBytes;
  }

  put(id: string, body: Uint8Array) {
    if (body.length > this.#maxBytes / 8) return;
    this.delete(id);
    this.#entries.set(id, body);
    this.#bytes += body.length;
    for (const [oldId, old] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(oldId);
      this.#bytes -= old.length;
    }
  }

  get(id: string): Uint8Array | undefined {
    return this.#entries.get(id);
  }

  delete(id: string) {
    const old = this.#entries.get(id);
    if (old) {
      this.#entries.delete(id);
      this.#bytes -= old.length;
    }
  }

  get bytes(): number {
    return this.#bytes;
  }
}
