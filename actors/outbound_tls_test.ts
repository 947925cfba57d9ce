import assert from "node:assert/strict";
import { OutboundTls } from "./outbound_tls.ts";
import { silentLogger } from "../core/log.ts";
import type { StsFetchResult } from "../core/mail/mta_sts_fetch.ts";
import type { StsPolicy } from "../core/policy/mta_sts.ts";

function policy(mode: StsPolicy["mode"], mx: string[], maxAge: number): StsFetchResult {
  return { ok: true, policy: { mode, mx, maxAge } };
}

/** An OutboundTls over an in-memory KV whose TXT answers, fetches and clock the test steers. */
async function setup() {
  const kv = await Deno.openKv(":memory:");
  const state = {
    now: Date.parse("2026-12-05T00:00:00Z"),
    txt: ["v=STSv1; id=one"] as string[] | Error,
    fetch: policy("enforce", ["mx.dest.test"], 3600),
    fetches: 0,
  };
  const tls = new OutboundTls({
    kv,
    log: silentLogger,
    now: () => state.now,
    txt: () => state.txt instanceof Error ? Promise.reject(state.txt) : Promise.resolve(state.txt),
    fetchPolicy: () => {
      state.fetches++;
      return Promise.resolve(state.fetch);
    },
    recheckMs: 1000,
  });
  return { kv, state, tls };
}

Deno.test("an MTA-STS policy is cached for its max_age and fetched again when the TXT id changes", async () => {
  const { kv, state, tls } = await setup();
  try {
    assert.equal((await tls.stsPolicy("dest.test"))?.mode, "enforce");
    state.now += 2000;
    state.fetch = policy("testing", ["mx.dest.test"], 3600);
    assert.equal((await tls.stsPolicy("dest.test"))?.mode, "enforce", "same id: the cache");
    assert.equal(state.fetches, 1);
    state.now += 2000;
    state.txt = ["v=STSv1; id=two"];
    assert.equal((await tls.stsPolicy("dest.test"))?.mode, "testing", "new id: fetched again");
    assert.equal(state.fetches, 2);
  } finally {
    kv.close();
  }
});

Deno.test("a failed fetch keeps a cached enforce policy in force until its max_age, and never blocks a domain without one", async () => {
  const { kv, state, tls } = await setup();
  try {
    await tls.stsPolicy("dest.test");
    state.now += 2000;
    state.txt = ["v=STSv1; id=two"];
    state.fetch = { ok: false, reason: "connection refused" };
    assert.equal((await tls.stsPolicy("dest.test"))?.mode, "enforce", "the cached policy holds");
    state.now += 2000;
    state.txt = new Error("SERVFAIL");
    assert.equal((await tls.stsPolicy("dest.test"))?.mode, "enforce", "DNS failure: cached");
    state.now += 3_600_000;
    assert.equal(await tls.stsPolicy("dest.test"), null, "past max_age the policy is gone");
    // A domain never cached: a failed fetch means no policy, not a blocked domain.
    assert.equal(await tls.stsPolicy("other.test"), null);
  } finally {
    kv.close();
  }
});
