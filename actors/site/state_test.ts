/**
 * A connection idling for work lets go the moment its site may not send, even when the flag went
 * up while the connection was awaiting something else and so nobody was waiting to be told.
 */
import assert from "node:assert/strict";
import { SiteState } from "./state.ts";
import { CredentialSettingsCache } from "../credential_settings.ts";
import { profileFor, resolveShaping, ShapingSchema } from "../../core/config/shaping.ts";
import { createLogger } from "../../core/log.ts";
import { FakeTimers } from "../../tests/support/fake_timers.ts";

async function siteState() {
  const kv = await Deno.openKv(":memory:");
  const timers = new FakeTimers();
  const profile = profileFor(
    resolveShaping(ShapingSchema.parse({ default: { idle_timeout: "1h" } })),
    ["mx.dest.test"],
  );
  const state = new SiteState("dest.test", profile, {
    kv,
    hostname: "relay.test",
    pools: {},
    credentials: new CredentialSettingsCache(kv, timers.now),
    now: timers.now,
    log: createLogger({ write: () => {} }),
    inflight: new Set(),
    timers,
  });
  return { state, timers, [Symbol.dispose]: () => kv.close() };
}

Deno.test("a connection that goes idle after its site began to stop does not wait out its idle timeout", async () => {
  using t = await siteState();
  // The stop came while the connection awaited its lease: nobody was waiting to hear it.
  t.state.stopping = true;
  t.state.notifyJobs();
  assert.equal(await t.state.waitForJob(3_600_000), false);
  assert.equal(t.timers.pending, 0, "no idle timer is left to hold the process");
});

Deno.test("an idle connection hears a stop, a suspension or a purge at once", async () => {
  for (const flag of ["stopping", "suspended", "purging"] as const) {
    using t = await siteState();
    const waiting = t.state.waitForJob(3_600_000);
    t.state[flag] = true;
    t.state.notifyJobs();
    // Told, not timed out: the fake clock never moved.
    assert.equal(await waiting, true, flag);
    assert.equal(t.state.halted, true, flag);
    assert.equal(await t.state.waitForJob(3_600_000), false, flag);
  }
});

Deno.test("a connection that waits again after a wake-up without a job still gives up a whole idle timeout after its last wait began", async () => {
  using t = await siteState();
  const start = t.timers.now();
  const first = t.state.waitForJob(60_000);
  t.state.notifyJobs(); // an offer another connection took
  assert.equal(await first, true);
  await t.timers.advance(1_000);
  let gaveUp: boolean | null = null;
  const second = t.state.waitForJob(60_000).then((got) => (gaveUp = got));
  await t.timers.advance(59_500); // the first wait's deadline passes: this one is not due
  assert.equal(gaveUp, null, "gave up at the deadline of a wait that had ended");
  await t.timers.advance(500);
  await second;
  assert.equal(gaveUp, false);
  assert.equal(t.timers.now() - start, 61_000);
  assert.equal(t.timers.pending, 0, "no idle timer is left once nobody waits");
});
