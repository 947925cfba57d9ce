import assert from "node:assert/strict";
import { parseReport } from "./reports.ts";

const enc = (s: string) => new TextEncoder().encode(s.replace(/\n/g, "\r\n"));

Deno.test("parseReport() reads every recipient group of a DSN and skips the per-message one", () => {
  const report = parseReport(enc(`Content-Type: multipart/report; boundary=X;
  report-type=delivery-status

--X
Content-Type: text/plain

human text
--X
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; <a@example.org>
Action: failed
Status: 5.2.2 (mailbox full)
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

Original-Recipient: rfc822; b@example.org
Action: delayed
Status: 4.4.1
--X--
`));
  assert.deepEqual(report, {
    kind: "dsn",
    recipients: [
      {
        recipient: "a@example.org",
        action: "failed",
        status: "5.2.2",
        diagnostic: "smtp; 552 5.2.2 Mailbox full",
      },
      { recipient: "b@example.org", action: "delayed", status: "4.4.1", diagnostic: null },
    ],
    originalHeaders: [],
  });
});

Deno.test("parseReport() reads a base64 feedback report and the original's headers", () => {
  const feedback = btoa(
    "Feedback-Type: abuse\r\nOriginal-Mail-From: <b-x@bounce.example>\r\nOriginal-Rcpt-To: u@example.org\r\n",
  );
  const report = parseReport(enc(`Content-Type: multipart/report; report-type=feedback-report;
 boundary="Y"

--Y
Content-Type: message/feedback-report
Content-Transfer-Encoding: base64

${feedback}
--Y
Content-Type: text/rfc822-headers

Return-Path: <b-x@bounce.example>
Subject: hi

--Y--
`));
  assert.equal(report?.kind, "arf");
  if (report?.kind !== "arf") return;
  assert.equal(report.feedbackType, "abuse");
  assert.equal(report.originalMailFrom, "b-x@bounce.example");
  assert.deepEqual(report.originalRcptTo, ["u@example.org"]);
  assert.deepEqual(report.originalHeaders.map((f) => f.name), ["return-path", "subject"]);
});

Deno.test("parseReport() returns null for mail that is not a report", () => {
  assert.equal(parseReport(enc("Subject: out of office\n\nI am away.\n")), null);
  assert.equal(
    parseReport(
      enc(
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="Z"\n\n--Z--\n',
      ),
    ),
    null,
  );
});
