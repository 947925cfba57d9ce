/**
 * Reading the KV call counts of a relay started on tests/support/kv_counting_main.ts: SIGUSR2
 * makes it write them to a file, which is read once it is whole.
 */
import type { Relay } from "./relay_process.ts";
import { eventually } from "./relay_fixture.ts";
import type { KvCount, KvCounts } from "./kv_counting_main.ts";

export type { KvCount, KvCounts };

export async function kvCounts(relay: Relay, file: string): Promise<KvCounts> {
  await Deno.remove(file).catch(() => {});
  Deno.kill(relay.pid, "SIGUSR2");
  return await eventually(
    async () => {
      try {
        return JSON.parse(await Deno.readTextFile(file)) as KvCounts;
      } catch {
        return undefined;
      }
    },
    "the relay's KV counts",
    20_000,
  );
}
