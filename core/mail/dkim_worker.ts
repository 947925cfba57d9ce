/**
 * A DKIM signing worker (core/mail/dkim_pool.ts starts one per core): it holds its own parsed
 * keys and answers each request with one signature per key, so the private-key operations (an
 * RSA-2048 signature costs 0.3 ms of CPU with OpenSSL, over 1.5 ms with node:crypto) run beside
 * the main thread instead of on it.
 *
 * @module
 */
import { DkimKeyCache, fastestKey } from "./dkim_keys.ts";
import { lowerThreadPriority } from "./thread_priority.ts";
import type { SignAnswer, SignBatch, SignReply, SignRequest } from "./dkim_pool.ts";

// This file runs as a Web Worker; the project's type check sees the window globals.
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<SignBatch>) => void) | null;
  postMessage(message: SignAnswer): void;
};

// Signing yields the core to the main thread when both want it (thread_priority.ts says why).
lowerThreadPriority();
const cache = new DkimKeyCache(fastestKey);

function answer({ id, keys, data }: SignRequest): SignReply {
  try {
    return { id, signatures: cache.prepared(keys).map((k, i) => k.sign(data[i]!)) };
  } catch (err) {
    // The message only: a key's parse error must not carry key material into a log.
    return { id, error: err instanceof Error ? err.message : String(err) };
  }
}

// A batch is answered in one message, each request on its own (one key that does not parse
// refuses only the messages signed with it).
scope.onmessage = ({ data: { more, ...first } }) => {
  scope.postMessage(more ? [answer(first), ...more.map(answer)] : answer(first));
};
