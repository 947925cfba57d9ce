/**
 * The explainable queue end to end: GET /v1/queue (sites, depth, age, state, limits), retry,
 * suspend, resume and purge per site; why a message waits; and the suppressions API.
 */
import assert from "node:assert/strict";
import type { Relay } from "./support/relay_process.ts";
import { submit } from "./support/smtp_client.ts";
import { eventually, startRelayWithSinks, waitForSite } from "./support/relay_fixture.ts";
import {
  createCredential,
  getMessage,
  waitForMessage,
  waitForStatus,
} from "./support/relay_api.ts";

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { POSTERN_RETRY_SCHEDULE: "1h", ...extra };
}

async function call(relay: Relay, method: string, path: string, account?: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${relay.httpPort}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${relay.adminToken}`,
      ...(account ? { "x-postern-account": account } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

Deno.test("GET /v1/queue lists each site with depth, oldest age, state and limits; a message says why it waits", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      defaultBehavior: { code: 451, message: "4.3.0 Queue full, try later" },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  const ids = await submit(relay, [
    { from: "app@origin.test", to: ["h1@dest.test", "h2@dest.test"], tag: "held1" },
    { from: "app@origin.test", to: "h3@other.test", tag: "held2" },
  ]);
  for (const id of ids) await waitForStatus(relay, id, "deferred");
  const site = await waitForSite(relay, (s) => s.depth === 3, "a site three recipients deep");
  assert.equal(site.site, `route:127.0.0.1:${sink.port}`);
  assert.deepEqual(site.domains, ["dest.test", "other.test"]);
  assert.equal(site.state, "active");
  assert.equal(typeof site.oldest_age_s, "number");
  assert.ok(site.oldest_age_s >= 0 && site.oldest_age_s < 600);
  assert.ok(Date.parse(site.next_attempt_at) > Date.now() + 30 * 60_000, "the 1 h schedule");
  assert.equal(site.limits.profile, "route", "a route's site has the route profile");
  assert.equal(site.limits.connection_limit, 50);
  assert.equal(site.limits.max_deliveries_per_connection, 100);
  assert.equal(site.limits.connect_timeout, "30s");
  assert.equal(site.limits.require_tls, false);
  assert.equal(typeof site.in_force.connection_limit, "number");
  assert.equal(site.leased_here, true);

  const m = await getMessage(relay, ids[0]!);
  for (const r of m.recipients) {
    assert.equal(r.status, "deferred");
    assert.equal(r.category, "other");
    assert.ok(r.next_attempt_at);
    assert.match(r.waiting!, /^other: 451 4\.3\.0 Queue full, try later; next attempt /);
    assert.ok(r.waiting!.endsWith(r.next_attempt_at!));
  }
});

Deno.test("retry sends deferred mail now; suspend holds a site's mail, across a restart, until resume", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: {
        "later@dest.test": { sequence: [{ code: 451, message: "4.3.0 Not now" }, "accept"] },
      },
    }],
    env: env(),
  });
  const { sink } = fx;
  let relay = fx.relay;
  const [id] = await submit(relay, [{
    from: "app@origin.test",
    to: "later@dest.test",
    tag: "later",
  }]);
  const deferred = await waitForStatus(relay, id!, "deferred");
  assert.ok(Date.parse(deferred.recipients[0]!.next_attempt_at!) > Date.now() + 30 * 60_000);
  // A site is named by its key or by any of its domains.
  const retried = await relay.api("/v1/queue/dest.test/retry", { method: "POST" });
  assert.equal(retried.status, 200, JSON.stringify(retried.json));
  const site = retried.json.site as string;
  assert.equal(site, `route:127.0.0.1:${sink.port}`);
  await waitForStatus(relay, id!, "delivered");

  const suspended = await relay.api(`/v1/queue/${encodeURIComponent(site)}/suspend`, {
    method: "POST",
  });
  assert.equal(suspended.status, 200);
  const [held] = await submit(relay, [{
    from: "app@origin.test",
    to: "held@dest.test",
    tag: "held",
  }]);
  const view = await waitForSite(relay, (s) => s.site === site && s.depth === 1, "the held mail");
  assert.equal(view.state, "suspended");
  relay = fx.relay = await relay.restart();
  // The new process has scanned the queue and adopted the held mail's site: the suspension holds.
  const still = await waitForSite(
    relay,
    (s) => s.site === site && s.depth === 1,
    "the site after restart",
  );
  assert.equal(still.state, "suspended");
  assert.equal((await getMessage(relay, held!)).recipients[0]!.status, "queued");
  assert.equal(sink.attempts.get("held@dest.test") ?? 0, 0, "not even tried while suspended");

  const resumed = await relay.api(`/v1/queue/${encodeURIComponent(site)}/resume`, {
    method: "POST",
  });
  assert.equal(resumed.status, 200);
  await waitForStatus(relay, held!, "delivered");
});

Deno.test("DELETE /v1/queue/:site bounces every queued recipient with an event and a DSN; ?dsn=false drops without one", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      defaultBehavior: { code: 451, message: "4.3.0 Try later" },
      behaviors: { "app@origin.test": "accept" },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  const ids = await submit(relay, [
    { from: "app@origin.test", to: "p1@dest.test", tag: "p1" },
    { from: "app@origin.test", to: "p2@dest.test", tag: "p2" },
  ]);
  for (const id of ids) await waitForStatus(relay, id, "deferred");
  const purged = await relay.api("/v1/queue/dest.test", { method: "DELETE" });
  assert.equal(purged.status, 200, JSON.stringify(purged.json));
  assert.equal(purged.json.removed, 2);
  for (const id of ids) {
    const m = await waitForStatus(relay, id, "bounced");
    const ev = m.events.at(-1)!;
    assert.equal(ev.type, "bounced");
    assert.match(ev.reply!, /Removed from the queue by an operator/);
  }
  const dsns = await eventually(() => {
    const got = sink.messages.filter((m) => m.from === "");
    return got.length === 2 ? got : undefined;
  }, "two DSNs");
  assert.ok(dsns.every((d) => /Action: failed/.test(d.text)));

  const [quiet] = await submit(relay, [{
    from: "app@origin.test",
    to: "p3@dest.test",
    tag: "p3",
  }]);
  await waitForStatus(relay, quiet!, "deferred");
  const dropped = await relay.api("/v1/queue/dest.test?dsn=false", { method: "DELETE" });
  assert.equal(dropped.json.removed, 1);
  await waitForStatus(relay, quiet!, "bounced");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sink.messages.filter((m) => m.from === "").length, 2, "no DSN for a drop");
});

Deno.test("the queue API is for the admin only and names unknown sites 404", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const cred = await createCredential(relay, "app");
  assert.equal((await relay.api("/v1/queue", { token: cred.password })).status, 403);
  assert.equal((await relay.api("/v1/queue", { token: "" })).status, 401);
  const unknown = await relay.api(`/v1/queue/${encodeURIComponent("no such site")}/retry`, {
    method: "POST",
  });
  assert.equal(unknown.status, 404);
  assert.equal(
    (await relay.api("/v1/queue/dest.test?dsn=maybe", { method: "DELETE" })).status,
    400,
  );
});

Deno.test("the suppressions API pages by cursor, adds and deletes, scoped to the caller's account", async () => {
  await using fx = await startRelayWithSinks({ env: env() });
  const { relay } = fx;
  const other = await call(relay, "POST", "/v1/accounts", undefined, { name: "Other Co" });
  assert.equal(other.status, 201, JSON.stringify(other.json));
  const otherId = other.json.id as string;

  const addresses = ["a@x.test", "b@x.test", "C@x.test", "d@x.test", "e@x.test"];
  for (const address of addresses) {
    const res = await call(relay, "POST", "/v1/suppressions", undefined, {
      address,
      reason: "complaint",
    });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.source, "api");
  }
  assert.equal(
    (await call(relay, "POST", "/v1/suppressions", undefined, { address: "not an address" }))
      .status,
    400,
  );
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await call(relay, "GET", `/v1/suppressions?limit=2${q}`);
    assert.equal(page.status, 200);
    seen.push(...page.json.data.map((s: { address: string }) => s.address));
    cursor = page.json.next_cursor;
    pages++;
  } while (cursor && pages < 10);
  assert.deepEqual(seen, ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"]);
  assert.ok(pages >= 3);

  // Another account sees none of it, and its own list is its own.
  assert.deepEqual((await call(relay, "GET", "/v1/suppressions", otherId)).json.data, []);
  assert.equal((await call(relay, "DELETE", "/v1/suppressions/a@x.test", otherId)).status, 404);

  // A suppressed address is not attempted; deleted, it is delivered again.
  const [blocked] = await submit(relay, [{ from: "app@origin.test", to: "c@x.test", tag: "s1" }]);
  assert.equal((await getMessage(relay, blocked!)).recipients[0]!.status, "suppressed");
  const del = await call(relay, "DELETE", "/v1/suppressions/C@x.test");
  assert.equal(del.status, 200);
  assert.equal((await call(relay, "DELETE", "/v1/suppressions/c@x.test")).status, 404);
  const [open] = await submit(relay, [{ from: "app@origin.test", to: "c@x.test", tag: "s2" }]);
  await waitForMessage(relay, open!, (m) => m.recipients[0]!.status === "delivered");
});
