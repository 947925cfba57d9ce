/**
 * Reading the KV call counts of a relay started on tests/support/kv_counting_main.ts: SIGUSR2
 * makes it write them to a file, which is read once it is whole.
 */
import { type Relay, repoRoot, startRelay } from "./relay_process.ts";
import { startSink } from "./sink.ts";
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

/** A loopback sink and a relay on the counting entry point that routes all mail to it. */
export async function startCountingRelay(env: Record<string, string>) {
  const sink = await startSink();
  const countFile = await Deno.makeTempFile({ prefix: "postern_kv_counts_" });
  const relay = await startRelay({
    entryPoint: `${repoRoot}/tests/support/kv_counting_main.ts`,
    env: { POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`, KV_COUNT_FILE: countFile, ...env },
  });
  const stop = async () => {
    await relay.stop();
    await sink.close();
    await Deno.remove(countFile).catch(() => {});
  };
  return { sink, relay, countFile, stop };
}
