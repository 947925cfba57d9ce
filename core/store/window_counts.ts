/**
 * Counters in fixed time windows, shared by every node on the store: credential rate limits and
 * failed-login counts. Each event is a `sum` on its window's key, which never conflicts with
 * another node's, instead of a compare-and-set on one value; readers combine the current and
 * previous windows (core/policy/sliding_window.ts). The window two back is deleted by the next
 * event, and a sweep drops what idle keys leave behind.
 */
import { keys } from "./keys.ts";
import { windowAt, type WindowCounts } from "../policy/sliding_window.ts";

/** Which counter: `id` in `scope`, counted in windows of `windowMs`. */
export interface WindowedCounter {
  scope: string;
  id: string;
  windowMs: number;
}

/** The key of the window `back` windows before the one holding `now`. */
function windowKey(c: WindowedCounter, now: number, back: number): Deno.KvKey {
  return keys.windowCount(c.scope, c.id, c.windowMs, windowAt(now, c.windowMs).index - back);
}

/** The current and previous windows' counts. */
export async function readWindows(
  kv: Deno.Kv,
  counter: WindowedCounter,
  now: number,
): Promise<WindowCounts> {
  const [previous, current] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>([
    windowKey(counter, now, 1),
    windowKey(counter, now, 0),
  ]);
  return {
    previous: Number(previous.value?.value ?? 0n),
    current: Number(current.value?.value ?? 0n),
  };
}

/** Counts one event at `now`. */
export async function countInWindow(
  kv: Deno.Kv,
  counter: WindowedCounter,
  now: number,
): Promise<void> {
  const res = await kv.atomic()
    .sum(windowKey(counter, now, 0), 1n)
    .delete(windowKey(counter, now, 2))
    .commit();
  if (!res.ok) throw new Error("Cannot count the event: the store refused the commit");
}

/**
 * Forgets the counts (a successful login clears its failures). Nothing counted, nothing written:
 * every successful login calls this, and a commit, even of deletes that find nothing, is a
 * synced write to the store's log (about 2 KB and a disk flush per login, in line with the
 * messages' own commits). A failure counted between the read and the delete is one that came
 * after the success, as it would be were it counted just after the delete.
 */
export async function clearWindows(
  kv: Deno.Kv,
  counter: WindowedCounter,
  now: number,
): Promise<void> {
  const windows = countedWindows(counter, now);
  const found = await kv.getMany(windows);
  if (found.every((e) => e.versionstamp === null)) return;
  await kv.atomic().delete(windows[0]!).delete(windows[1]!).commit();
}

/** The keys of the windows that count at `now` (what clearWindows clears). */
export function countedWindows(counter: WindowedCounter, now: number): Deno.KvKey[] {
  return [windowKey(counter, now, 0), windowKey(counter, now, 1)];
}

/** Deletes windows that no longer count (two windows old), in batches; returns how many. */
export async function sweepWindows(kv: Deno.Kv, now: number): Promise<number> {
  let deleted = 0;
  let op = kv.atomic();
  let pending = 0;
  for await (const e of kv.list({ prefix: keys.windowCountPrefix() })) {
    const [, , , windowMs, index] = e.key as [string, string, string, number, number];
    if ((index + 2) * windowMs > now) continue;
    op.delete(e.key);
    if (++pending === 500) {
      await op.commit();
      deleted += pending;
      op = kv.atomic();
      pending = 0;
    }
  }
  if (pending > 0) {
    await op.commit();
    deleted += pending;
  }
  return deleted;
}
