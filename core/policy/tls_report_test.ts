import assert from "node:assert/strict";
import { buildTlsReport, parseTlsRptRecord } from "./tls_report.ts";

Deno.test("the _smtp._tls record gives its mailto: and https: rua URIs; other records give none", () => {
  assert.deepEqual(
    parseTlsRptRecord(["v=TLSRPTv1; rua=mailto:tls@example.test,https://r.example.test/x"]),
    ["mailto:tls@example.test", "https://r.example.test/x"],
  );
  assert.deepEqual(parseTlsRptRecord(["v=TLSRPTv1; rua=ftp://nope"]), []);
  assert.deepEqual(parseTlsRptRecord(["v=spf1 -all"]), []);
});

Deno.test("the aggregate report is RFC 8460 JSON: date range, policy, summary and failure details", () => {
  const report = buildTlsReport({
    day: "2026-12-04",
    domain: "dest.test",
    policies: [{
      policy: {
        type: "sts",
        strings: ["version: STSv1", "mode: testing"],
        mxHosts: ["*.dest.test"],
      },
      success: 3,
      failures: [{ result: "certificate-expired", mx: "mx1.dest.test", count: 2 }],
    }],
  }, { organization: "relay.test", contact: "postmaster@relay.test" });
  assert.deepEqual(report["date-range"], {
    "start-datetime": "2026-12-04T00:00:00Z",
    "end-datetime": "2026-12-04T23:59:59Z",
  });
  assert.deepEqual(report.policies, [{
    policy: {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing"],
      "policy-domain": "dest.test",
      "mx-host": ["*.dest.test"],
    },
    summary: { "total-successful-session-count": 3, "total-failure-session-count": 2 },
    "failure-details": [{
      "result-type": "certificate-expired",
      "receiving-mx-hostname": "mx1.dest.test",
      "failed-session-count": 2,
    }],
  }]);
});
