/**
 * Small helpers shared by the operations tests (restarts, shutdown, logs, memory): waiting for
 * a condition, building uniquely tagged messages, counting what a sink received.
 *
 * @module
 */

import type { ReceivedMessage } from "./sink.ts";

/**
 * Resolves once `condition` holds, checking every `intervalMs`; rejects after `timeoutMs`
 * with `what` (and, when given, `detail()`) so a failure says what never happened.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      const detail = options.detail ? `: ${options.detail()}` : "";
      throw new Error(`Cannot see ${what} as it did not happen within ${timeoutMs} ms${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/** The header that tags each test message; the sink side counts deliveries by it. */
export const TAG_HEADER = "X-Postern-Test-Id";

/** A small message with CRLF line endings, tagged with `tag`. */
export function taggedMessage(
  tag: string,
  options: { from?: string; to?: string; body?: string } = {},
): string {
  return [
    `From: ${options.from ?? "app@origin.test"}`,
    `To: ${options.to ?? "user@dest.test"}`,
    `Subject: operations test ${tag}`,
    `${TAG_HEADER}: ${tag}`,
    "",
    options.body ?? `Body of ${tag}.`,
    "",
  ].join("\r\n");
}

/** The tag of a message the sink received, or null for an untagged one. */
export function tagOf(message: ReceivedMessage): string | null {
  const match = new RegExp(`^${TAG_HEADER}: *(\\S+)`, "im").exec(message.headers);
  return match ? match[1]! : null;
}

/** How many copies of each tag arrived. */
export function countTags(messages: readonly ReceivedMessage[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of messages) {
    const tag = tagOf(message);
    if (tag !== null) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return counts;
}

/** A field of /proc/<pid>/status in bytes, e.g. "VmHWM" (peak resident) or "VmRSS". */
export async function procStatusBytes(pid: number, field: "VmHWM" | "VmRSS"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!match) throw new Error(`Cannot read ${field} of process ${pid}: no such line`);
  return Number(match[1]) * 1024;
}

/** Every entry of a KV file, for checks on what the relay left behind. */
export async function dumpKv(path: string): Promise<Deno.KvEntry<unknown>[]> {
  const kv = await Deno.openKv(path);
  try {
    const out: Deno.KvEntry<unknown>[] = [];
    for await (const entry of kv.list({ prefix: [] })) out.push(entry);
    return out;
  } finally {
    kv.close();
  }
}

/** `size` bytes of base64-alphabet lines ending in CRLF: no "." to stuff, nothing to fold. */
export function randomBody(size: number): Uint8Array {
  const alphabet = new TextEncoder().encode(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
  );
  const body = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65_536) {
    crypto.getRandomValues(body.subarray(offset, Math.min(size, offset + 65_536)));
  }
  let column = 0;
  for (let i = 0; i < size; i++) {
    if (i >= size - 2) {
      body[i] = i === size - 2 ? 13 : 10; // the body ends with CRLF
    } else if (column === 76) {
      body[i] = 13;
      column++;
    } else if (column === 77) {
      body[i] = 10;
      column = 0;
    } else {
      body[i] = alphabet[body[i]! & 63]!;
      column++;
    }
  }
  return body;
}
