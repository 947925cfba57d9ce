/**
 * A store that answers within a bound, or throws. Deno's client for a remote store (KV Connect)
 * retries a request it cannot deliver without end: while the store is unreachable every `get`,
 * `list` page and commit simply waits, and so would an SMTP client for its reply, a lease loop,
 * a webhook actor. Behind this wrapper each of those calls fails after `ms`
 * (POSTERN_STORE_RETRY) with a {@linkcode StoreUnavailableError} instead, which the doors turn
 * into 451 / 503 and the background loops log and retry.
 *
 * An abandoned call is not called back: its request may still land once the store is back. For
 * reads that is harmless; for a commit it means "unknown", never "certainly not written".
 */

import { metrics } from "../metrics.ts";
import { ForwardingOperation } from "./forwarding_operation.ts";

export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

/**
 * `promise`, or a StoreUnavailableError after `ms`; the promise itself is left to run. An
 * infinite `ms` (a local file, which answers within SQLite's busy timeout) is `promise` itself.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms === Infinity) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUnavailableError(`The store did not answer ${what} within ${ms} ms`)),
      Math.max(0, ms),
    );
  });
  promise.catch(() => {}); // a late failure of an abandoned call is not an unhandled rejection
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function boundedList<T>(it: Deno.KvListIterator<T>, ms: number): Deno.KvListIterator<T> {
  const wrapped = {
    get cursor() {
      return it.cursor;
    },
    next: () => within(it.next(), ms, "a list read"),
    [Symbol.asyncIterator]() {
      return wrapped;
    },
  };
  return wrapped as unknown as Deno.KvListIterator<T>;
}

/** Counts a commit that landed and its mutations (what write amplification is measured in). */
function countCommit(mutations: number) {
  metrics.kvCommits.inc();
  metrics.kvMutations.inc({}, mutations);
}

function boundedAtomic(op: Deno.AtomicOperation, ms: number): Deno.AtomicOperation {
  return new BoundedOperation(op, ms).atomic;
}

/** An atomic operation whose commit is bounded by `ms` and, once it lands, counted. */
class BoundedOperation extends ForwardingOperation {
  readonly #ms: number;
  #mutations = 0;

  constructor(op: Deno.AtomicOperation, ms: number) {
    super(op);
    this.#ms = ms;
  }

  protected override added(mutations: number) {
    this.#mutations += mutations;
  }

  override commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    const mutations = this.#mutations;
    return within(
      this.op.commit().then((res) => {
        if (res.ok) countCommit(mutations);
        return res;
      }),
      this.#ms,
      "a commit",
    );
  }
}

/** `kv` with every read and commit bounded by `ms`. */
export function boundedKv(kv: Deno.Kv, ms: number): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      switch (prop) {
        case "get":
        case "getMany":
        case "set":
        case "delete":
          return (...args: unknown[]) => {
            let done = (target[prop] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            if (prop === "set" || prop === "delete") {
              done = done.then((res) => {
                countCommit(1);
                return res;
              });
            }
            return within(done, ms, `a ${prop}`);
          };
        case "list":
          return (...args: Parameters<Deno.Kv["list"]>) => boundedList(target.list(...args), ms);
        case "atomic":
          return () => boundedAtomic(target.atomic(), ms);
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
