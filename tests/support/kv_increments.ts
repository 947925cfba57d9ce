/**
 * Another process on a store file: adds 1 to ["ctr"] `count` times by check-and-set (a commit
 * that meets "database is locked" is tried again), and prints how many increments committed. Run
 * by core/store/checkpoint_pacer_test.ts beside a pacing process.
 *
 * Usage: deno run -A --unstable-kv tests/support/kv_increments.ts STORE_PATH COUNT
 */
export async function increment(kv: Deno.Kv, count: number, pad: string): Promise<number> {
  let committed = 0;
  for (let i = 0; i < count;) {
    try {
      const cur = await kv.get<number>(["ctr"]);
      const res = await kv.atomic().check(cur).set(["ctr"], (cur.value ?? 0) + 1)
        .set(["pad", pad, i], "x".repeat(3000)).commit();
      if (res.ok) committed++;
      i++;
    } catch (err) {
      if (!/locked/.test(String(err))) throw err;
    }
  }
  return committed;
}

if (import.meta.main) {
  const kv = await Deno.openKv(Deno.args[0]!);
  console.log(await increment(kv, Number(Deno.args[1]), `p${Deno.pid}`));
  kv.close();
}
