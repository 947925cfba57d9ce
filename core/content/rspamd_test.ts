import assert from "node:assert/strict";
import { parseResult, RspamdError } from "./rspamd.ts";
import { spamHeaders } from "./spam_headers.ts";

// Answers of Debian's rspamd 3.4 to /checkv2, as tests/content_filter_test.ts receives them.
const GTUBE_ANSWER =
  '{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":' +
  '{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},' +
  '"message-id":"x@y","time_real":0.6}';
const CLEAN_ANSWER =
  '{"is_skipped":false,"score":0.5,"required_score":15.0,"action":"no action","symbols":{' +
  '"FROM_NO_DN":{"name":"FROM_NO_DN","score":0.0},"MID_RHS_NOT_FQDN":{"name":"MID_RHS_NOT_FQDN",' +
  '"score":0.5,"description":"Message-ID RHS is not a fully-qualified domain name"}},' +
  '"messages":{},"message-id":"x@y","time_real":0.001}';

Deno.test("rspamd's GTUBE answer reads as an early reject with its SMTP reason", () => {
  const r = parseResult(GTUBE_ANSWER);
  assert.equal(r.action, "reject");
  assert.equal(r.passthrough, true);
  assert.equal(r.score, 15);
  assert.equal(r.smtpMessage, "Gtube pattern");
  assert.deepEqual(r.symbols, [{ name: "GTUBE", score: 0 }]);
});

Deno.test("symbols come highest score first; milter headers are kept", () => {
  const r = parseResult(
    CLEAN_ANSWER.replace(
      '"messages":{}',
      '"messages":{},"milter":{"add_headers":{"X-Spam-Level":{"value":"*","order":0},' +
        '"X-Rspamd-Server":"scanner1","Other":{"value":1}}}',
    ),
  );
  assert.deepEqual(r.symbols.map((s) => s.name), ["MID_RHS_NOT_FQDN", "FROM_NO_DN"]);
  assert.deepEqual(r.addHeaders, [["X-Spam-Level", "*"], ["X-Rspamd-Server", "scanner1"]]);
});

Deno.test("an answer that is not rspamd's JSON is an RspamdError, never a verdict", () => {
  assert.throws(() => parseResult("<html>502 Bad Gateway</html>"), RspamdError);
  assert.throws(() => parseResult('{"score":1}'), RspamdError);
  assert.throws(
    () => parseResult('{"action":"no action","score":"1","required_score":15}'),
    RspamdError,
  );
  assert.throws(() => parseResult("null"), RspamdError);
});

Deno.test("X-Spam headers summarise the scan as printable, folded header fields", () => {
  const headers = spamHeaders(parseResult(CLEAN_ANSWER));
  assert.equal(
    headers,
    "X-Spamd-Result: default: False [0.50 / 15.00]; MID_RHS_NOT_FQDN(0.50);\r\n" +
      " FROM_NO_DN(0.00)\r\n" +
      "X-Spam-Status: No, score=0.50 required=15.00\r\n" +
      "X-Spam-Action: no action\r\n",
  );
  for (const line of headers.split("\r\n")) assert.ok(line.length <= 78, line);
});

Deno.test("rspamd's own X-Spam headers win over the summary; other milter headers are left out", () => {
  const r = parseResult(CLEAN_ANSWER);
  r.addHeaders = [["X-Spam-Status", "No, rspamd's own\r\nInjected: yes"], ["Subject", "x"]];
  const headers = spamHeaders(r);
  assert.match(headers, /^X-Spam-Status: No, rspamd's own Injected: yes\r\n/m);
  assert.doesNotMatch(headers, /^Subject:/m);
  assert.doesNotMatch(headers, /^Injected:/m);
  assert.equal(headers.match(/X-Spam-Status/g)?.length, 1);
});
