import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./load.ts";

Deno.test("content filtering is off unless POSTERN_RSPAMD_URL names rspamd; held mail expires in 7 days", () => {
  const off = loadConfig({});
  assert.equal(off.rspamdUrl, undefined);
  assert.equal(off.rspamdTimeout, 15_000);
  assert.equal(off.holdExpiry, 7 * 86_400_000);
  assert.equal(off.abuseBrakeLimit, 0);
  const on = loadConfig({
    POSTERN_RSPAMD_URL: "http://127.0.0.1:11333",
    POSTERN_RSPAMD_TIMEOUT: "2s",
    POSTERN_RSPAMD_PASSWORD: "q1",
    POSTERN_HOLD_EXPIRY: "1d",
    POSTERN_ABUSE_BRAKE_LIMIT: "5",
    POSTERN_ABUSE_BRAKE_WINDOW: "10m",
  });
  assert.equal(on.rspamdUrl, "http://127.0.0.1:11333");
  assert.equal(on.rspamdTimeout, 2_000);
  assert.equal(on.rspamdPassword, "q1");
  assert.equal(on.holdExpiry, 86_400_000);
  assert.equal(on.abuseBrakeLimit, 5);
  assert.equal(on.abuseBrakeWindow, 600_000);
});

Deno.test("a POSTERN_RSPAMD_URL that is not an http(s) URL stops start-up naming the setting", () => {
  for (const bad of ["127.0.0.1:11333", "ftp://127.0.0.1/", "http://"]) {
    assert.throws(
      () => loadConfig({ POSTERN_RSPAMD_URL: bad }),
      (e: unknown) => e instanceof ConfigError && /^POSTERN_RSPAMD_URL: /.test(e.message),
      bad,
    );
  }
});
