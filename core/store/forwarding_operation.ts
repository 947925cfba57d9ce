/**
 * An atomic operation that forwards every builder call to another one and returns itself, so a
 * caller stays on the wrapper. The store's wrappers (bounded_kv.ts counts and bounds commits,
 * committer.ts folds sums) extend it instead of wrapping the operation in a Proxy: a Proxy's trap,
 * and the closure it made for every builder call, were paid for each mutation of every commit.
 */
export class ForwardingOperation {
  protected readonly op: Deno.AtomicOperation;

  constructor(op: Deno.AtomicOperation) {
    this.op = op;
  }

  /** Hears of each mutation added (`mutate` adds one per argument). */
  protected added(_mutations: number) {}

  /** This wrapper as the operation type callers take. */
  get atomic(): Deno.AtomicOperation {
    return this as unknown as Deno.AtomicOperation;
  }

  check(...checks: Deno.AtomicCheck[]): this {
    this.op.check(...checks);
    return this;
  }

  mutate(...mutations: Deno.KvMutation[]): this {
    this.added(mutations.length);
    this.op.mutate(...mutations);
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.added(1);
    this.op.set(key, value, options);
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.added(1);
    this.op.delete(key);
    return this;
  }

  sum(key: Deno.KvKey, n: bigint): this {
    this.added(1);
    this.op.sum(key, n);
    return this;
  }

  min(key: Deno.KvKey, n: bigint): this {
    this.added(1);
    this.op.min(key, n);
    return this;
  }

  max(key: Deno.KvKey, n: bigint): this {
    this.added(1);
    this.op.max(key, n);
    return this;
  }

  enqueue(...args: Parameters<Deno.AtomicOperation["enqueue"]>): this {
    this.op.enqueue(...args);
    return this;
  }

  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    return this.op.commit();
  }
}
