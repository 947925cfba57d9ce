/**
 * A DKIM signing worker (core/mail/dkim_pool.ts starts one per core): it holds its own parsed
 * keys and answers each request with one signature per key, so the private-key operations (an
 * RSA-2048 signature costs over a millisecond of CPU) run beside the main thread instead of on it.
 *
 * @module
 */
import { DkimKeyCache, signatureBytes } from "./dkim_keys.ts";
import type { SignReply, SignRequest } from "./dkim_pool.ts";

// This file runs as a Web Worker; the project's type check sees the window globals.
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<SignRequest>) => void) | null;
  postMessage(message: SignReply): void;
};

const cache = new DkimKeyCache();

scope.onmessage = ({ data: { id, keys, data } }) => {
  let reply: SignReply;
  try {
    const objects = cache.objects(keys);
    reply = {
      id,
      signatures: keys.map((k, i) => signatureBytes(k.algorithm, objects[i]!, data[i]!)),
    };
  } catch (err) {
    // The message only: a key's parse error must not carry key material into a log.
    reply = { id, error: err instanceof Error ? err.message : String(err) };
  }
  scope.postMessage(reply);
};
