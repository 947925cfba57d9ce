import assert from "node:assert/strict";
import { buildDsn, dsnStatus, headerSection, isDeliveryReport } from "./dsn.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const AT = Date.parse("2026-03-02T10:00:00Z");

Deno.test("dsnStatus() takes the reply's own status, else one from its class or reason", () => {
  const cases: Array<
    [reply: string, how: "bounced" | "expired", category: string | undefined, want: string]
  > = [
    ["550 5.1.1 <x@y>: User unknown", "bounced", "invalid_recipient", "5.1.1"],
    ["552 5.2.2 Mailbox full", "bounced", "mailbox_full", "5.2.2"],
    ["554 Transaction failed", "bounced", "other", "5.0.0"],
    ["550 4.7.1 odd class", "bounced", "other", "5.0.0"],
    ["dest.test has no MX and no address records", "bounced", "bad_domain", "5.1.2"],
    ["451 4.7.1 greylisted", "expired", "greylisted", "4.4.7"],
    ["ECONNREFUSED: connect refused", "expired", "other", "4.4.7"],
  ];
  for (const [reply, how, category, want] of cases) {
    assert.equal(dsnStatus(reply, how, category), want, reply);
  }
});

Deno.test("isDeliveryReport() spots a DSN by its content type, whatever the folding and case", () => {
  const cases: Array<[string, boolean]> = [
    ['Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="x"\r\n', true],
    ['content-type: Multipart/Report; boundary="x"; report-type="delivery-status"\r\n', true],
    ["Content-Type: multipart/report; report-type=disposition-notification\r\n", false],
    ["Content-Type: text/plain\r\nSubject: delivery-status\r\n", false],
    ["Subject: hi\r\n", false],
  ];
  for (const [headers, want] of cases) assert.equal(isDeliveryReport(headers), want, headers);
});

Deno.test("headerSection() returns the header block, cut at a whole line when too long", () => {
  const msg = enc.encode("A: 1\r\nB: 2\r\n\r\nbody\r\n");
  assert.equal(dec.decode(headerSection(msg)), "A: 1\r\nB: 2\r\n");
  assert.equal(dec.decode(headerSection(enc.encode("Only: header\r\n"))), "Only: header\r\n");
  const long = enc.encode("A: 1234567\r\nB: 1234567\r\n\r\nbody");
  assert.equal(dec.decode(headerSection(long, 15)), "A: 1234567\r\n");
});

Deno.test("buildDsn() writes an RFC 3464 multipart/report with per-recipient fields and the original headers", () => {
  const original = enc.encode(
    "Received: from x\r\nFrom: App <app@origin.test>\r\nSubject: Hello\r\n" +
      "Message-ID: <m1@origin.test>\r\n",
  );
  const dsn = dec.decode(buildDsn({
    reportingMta: "relay.test",
    queueId: "01ABC",
    to: "app@origin.test",
    arrivalAt: AT - 60_000,
    originalHeaders: original,
    recipients: [
      {
        rcpt: "nobody@dest.test",
        status: "5.1.1",
        diagnostic: "550 5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown",
        remoteMta: "mx1.dest.test",
        lastAttemptAt: AT,
      },
      {
        rcpt: "slow@dest.test",
        status: "4.4.7",
        diagnostic: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:25",
        lastAttemptAt: AT,
      },
    ],
    now: AT,
    messageId: "<dsn1@relay.test>",
    boundary: "BOUND",
  }));
  const [head, ...rest] = dsn.split("\r\n\r\n");
  assert.match(head!, /^From: Mail Delivery System <MAILER-DAEMON@relay\.test>$/m);
  assert.match(head!, /^To: <app@origin\.test>$/m);
  assert.match(head!, /^Auto-Submitted: auto-replied$/m);
  assert.match(head!, /^MIME-Version: 1\.0$/m);
  assert.match(
    head!,
    /^Content-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="BOUND"$/m,
  );
  assert.match(head!, /^In-Reply-To: <m1@origin\.test>$/m);
  const body = rest.join("\r\n\r\n");
  const parts = body.split("--BOUND");
  assert.equal(parts.length, 5, "preamble, three parts, epilogue after the close delimiter");
  assert.ok(body.endsWith("--BOUND--\r\n"));
  assert.match(parts[1]!, /Content-Type: text\/plain; charset=utf-8/);
  assert.match(parts[1]!, /<nobody@dest\.test>: 550 5\.1\.1/);
  const status = parts[2]!;
  assert.match(status, /^\r\nContent-Type: message\/delivery-status\r\n/);
  assert.match(status, /^Reporting-MTA: dns; relay\.test$/m);
  assert.match(status, /^Arrival-Date: Mon, 2 Mar 2026 09:59:00 \+0000$/m);
  const groups = status.split("\r\n\r\n").slice(2).filter((g) => g.trim() !== "");
  assert.equal(groups.length, 2, "one field group per recipient");
  assert.match(groups[0]!, /^Final-Recipient: rfc822; nobody@dest\.test$/m);
  assert.match(groups[0]!, /^Action: failed$/m);
  assert.match(groups[0]!, /^Status: 5\.1\.1$/m);
  assert.match(groups[0]!, /^Remote-MTA: dns; mx1\.dest\.test$/m);
  assert.match(groups[0]!, /^Diagnostic-Code: smtp; 550 5\.1\.1 <nobody@dest\.test>: Recipient/m);
  assert.match(groups[1]!, /^Status: 4\.4\.7$/m);
  assert.doesNotMatch(groups[1]!, /Remote-MTA/);
  assert.match(groups[1]!, /^Diagnostic-Code: X-Postern; ECONNREFUSED/m);
  for (const line of dsn.split("\r\n")) assert.ok(line.length <= 998, line);
  assert.match(parts[3]!, /^\r\nContent-Type: text\/rfc822-headers\r\n/);
  assert.match(parts[3]!, /Subject: Hello\r\nMessage-ID: <m1@origin\.test>\r\n$/);
});

Deno.test("buildDsn() folds a long diagnostic and types a UTF-8 recipient per RFC 6533", () => {
  const dsn = dec.decode(buildDsn({
    reportingMta: "relay.test",
    queueId: "01ABC",
    to: "app@origin.test",
    arrivalAt: AT,
    originalHeaders: enc.encode("Subject: x\r\n"),
    recipients: [{
      rcpt: "josé@dest.test",
      status: "5.7.1",
      diagnostic: "550 5.7.1 " + "blocked ".repeat(60),
      lastAttemptAt: AT,
    }],
    now: AT,
    messageId: "<dsn2@relay.test>",
  }));
  assert.match(dsn, /^Final-Recipient: utf-8; josé@dest\.test$/m);
  const diag = /^Diagnostic-Code:.*(?:\r\n[ \t].*)*/m.exec(dsn)![0];
  assert.ok(diag.split("\r\n").length > 3, "folded onto several lines");
  for (const line of diag.split("\r\n")) assert.ok(line.length <= 78, line);
});
