import assert from "node:assert/strict";
import { didYouMean, nearest } from "./suggest.ts";
import { CONFIG_FIELDS, envNameOf, envSettings, loadConfig } from "./load.ts";

Deno.test("a misspelt setting is matched to the one meant, and a stranger to none", () => {
  const known = Object.keys(envSettings());
  assert.equal(nearest("POSTERN_SMTP_PROT", known), "POSTERN_SMTP_PORT");
  assert.equal(nearest("POSTERN_HTTPPORT", known), "POSTERN_HTTP_PORT");
  assert.equal(nearest("POSTERN_TLS_CRT", known), "POSTERN_TLS_CERT");
  assert.equal(nearest("smtpPrt", CONFIG_FIELDS), "smtpPort");
  assert.equal(didYouMean("POSTERN_BANANA", known), "");
});

Deno.test("every config field has an environment variable, named after it", () => {
  const settings = envSettings();
  for (const field of CONFIG_FIELDS) {
    assert.ok(Object.values(settings).includes(field), field);
  }
  // The documented names are the derived ones: one rule, no exceptions to remember.
  for (const [name, field] of Object.entries(settings)) assert.equal(name, envNameOf(field));
});

Deno.test("a structured setting may come from the environment as JSON", () => {
  const config = loadConfig({
    POSTERN_SHAPING: '{"default": {"connection_limit": 3}}',
    POSTERN_ROUTES: '{"example.com": ["127.0.0.1:2525"]}',
  });
  assert.equal(config.shaping.default.connection_limit, 3);
  assert.equal(config.routes["example.com"]?.hosts[0]?.port, 2525);
  assert.throws(() => loadConfig({ POSTERN_POOLS: "{nope" }), /^ConfigError: POSTERN_POOLS: /);
});
