/**
 * Greylisting is not throttling: receivers that greylist, in the wordings real ones use, get each
 * recipient rescheduled while the site keeps its whole concurrency window and rate; a receiver
 * that throttles (Gmail's 4.7.28) still shrinks its site's window for the cool-down.
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { type SinkReply, startSink } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { waitForSite, writeConfig } from "./support/relay_fixture.ts";
import { waitForMessage, waitForStatus } from "./support/relay_api.ts";

const GREYLISTING: SinkReply[] = [
  {
    code: 450,
    message: "4.2.0 <g0@grey.test>: Recipient address rejected: Greylisted, see " +
      "http://postgrey.schweikert.ch/help/grey.test.html",
  },
  { code: 451, message: "4.7.1 <g1@grey.test>: Recipient address rejected: Greylisted" },
  { code: 451, message: "4.7.1 Try again later" },
  { code: 451, message: "4.7.1 Message temporarily deferred, please retry" },
  { code: 450, message: "4.7.1 Greylisting in action, please come back later" },
];

Deno.test("a greylisting receiver gets each recipient retried without shrinking its site's window or rate, while a throttling one shrinks its own", async () => {
  const grey = await startSink({
    behaviors: Object.fromEntries(
      GREYLIST_RCPTS().map((rcpt, i) => [rcpt, { sequence: [GREYLISTING[i]!, "accept"] }]),
    ),
  });
  const throttling = await startSink({
    defaultBehavior: {
      sequence: [{
        code: 450,
        message: "4.7.28 Our system has detected an unusual rate of mail " +
          "originating from your IP address, please try again later - gsmtp",
      }, "accept"],
    },
  });
  // Some greylist before the transaction, in the banner: the connection is refused, not the site.
  const greetGrey = await startSink({
    greeting: { code: 450, message: "4.7.1 Greylisted, please try again later" },
  });
  const config = await writeConfig({
    shaping: { default: { connection_limit: 4, backoff_cooldown: "5m" } },
  });
  const relay = await startRelay({
    env: {
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_CONFIG: config,
      POSTERN_ROUTES: `grey.test=127.0.0.1:${grey.port},busy.test=127.0.0.1:${throttling.port},` +
        `banner.test=127.0.0.1:${greetGrey.port}`,
      POSTERN_RETRY_SCHEDULE: "3s",
    },
  });
  try {
    const ids = await submit(relay, [
      ...GREYLIST_RCPTS().map((to, i) => ({ from: "app@origin.test", to, tag: `g${i}` })),
      { from: "app@origin.test", to: "b@banner.test", tag: "b" },
      { from: "app@origin.test", to: "t@busy.test", tag: "t" },
    ]);
    const greyIds = ids.slice(0, GREYLISTING.length);
    for (const id of greyIds) {
      const m = await waitForMessage(relay, id, (v) => v.events.some((e) => e.type === "deferred"));
      const deferred = m.events.find((e) => e.type === "deferred")!;
      assert.equal(deferred.category, "greylisted", deferred.reply ?? "");
      assert.ok(deferred.next_attempt_at, "rescheduled");
    }
    const busy = await waitForMessage(
      relay,
      ids.at(-1)!,
      (v) => v.events.some((e) => e.type === "deferred"),
    );
    assert.equal(busy.events.find((e) => e.type === "deferred")!.category, "throttled");

    const greySite = await waitForSite(relay, (s) => s.domains.includes("grey.test"), "grey site");
    assert.equal(greySite.state, "active", "greylisting does not throttle the site");
    assert.equal(greySite.in_force.connection_limit, 4, "the whole window stays open");
    assert.equal(greySite.throttled_until, null);
    const banner = await waitForMessage(
      relay,
      ids.at(-2)!,
      (v) => v.events.some((e) => e.type === "deferred"),
    );
    assert.equal(banner.events.find((e) => e.type === "deferred")!.category, "greylisted");
    const bannerSite = await waitForSite(relay, (s) => s.domains.includes("banner.test"), "banner");
    assert.equal(bannerSite.state, "active", "a greylisting banner does not throttle the site");
    assert.equal(bannerSite.in_force.connection_limit, 4);
    const busySite = await waitForSite(relay, (s) => s.domains.includes("busy.test"), "busy site");
    assert.equal(busySite.state, "throttled", "Gmail's 4.7.28 throttles the site");
    assert.equal(busySite.in_force.connection_limit, 2, "its window halves");
    assert.ok(relay.logs.every((l) => !(l.event === "site.throttled" && l.site === greySite.site)));

    // Each greylisted recipient is delivered on its retry.
    for (const id of greyIds) await waitForStatus(relay, id, "delivered", 30_000);
    assert.equal(grey.messages.length, GREYLISTING.length);
  } finally {
    await relay.stop();
    await grey.close();
    await throttling.close();
    await greetGrey.close();
  }
});

function GREYLIST_RCPTS(): string[] {
  return GREYLISTING.map((_, i) => `g${i}@grey.test`);
}
