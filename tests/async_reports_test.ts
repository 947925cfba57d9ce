/**
 * Asynchronous bounces and complaints end to end: VERP return paths on the way out, and DSNs
 * (RFC 3464) and feedback reports (RFC 5965) sent back to the relay's inbound listener, as a
 * remote server or a mailbox provider would send them.
 */
import assert from "node:assert/strict";
import { freePort, type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { SmtpClient, submit } from "./support/smtp_client.ts";
import { waitUntil } from "./support/operations.ts";
import { getMessage } from "./support/relay_api.ts";
import { startWebhookReceiver } from "./support/webhook_receiver.ts";

const BOUNCES = "bounces.relay.test";

async function setup(sink: Sink): Promise<{ relay: Relay; inboundPort: number }> {
  const inboundPort = await freePort();
  const relay = await startRelay({
    env: {
      POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
      POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      POSTERN_POLL_INTERVAL: "200ms",
      POSTERN_EVENT_SETTLE: "200ms",
      POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
      POSTERN_BOUNCE_DOMAIN: BOUNCES,
      POSTERN_INBOUND_PORT: String(inboundPort),
    },
  });
  return { relay, inboundPort };
}

/** Sends one message to the inbound listener; returns the reply to each step. */
async function report(port: number, from: string, to: string, message: string) {
  const client = await SmtpClient.open(port);
  try {
    await client.hello("mx.dest.test");
    const mail = await client.command(`MAIL FROM:<${from}>`);
    const rcpt = await client.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return { mail, rcpt, data: null };
    const go = await client.command("DATA");
    assert.equal(go.code, 354, go.raw);
    await client.write(message.replace(/\n/g, "\r\n").replace(/\r\n$/, "") + "\r\n");
    return { mail, rcpt, data: await client.endData() };
  } finally {
    await client.quit();
  }
}

function dsn(verp: string, rcpt: string): string {
  return `From: MAILER-DAEMON@dest.test
To: <${verp}>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B1/mx.dest.test"

--B1/mx.dest.test
Content-Type: text/plain

Your message could not be delivered.

--B1/mx.dest.test
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.dest.test
Arrival-Date: Mon, 1 Sep 2025 10:00:00 +0000

Final-Recipient: rfc822; ${rcpt}
Original-Recipient: rfc822;${rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <${rcpt}>: Recipient address rejected:
 User unknown in local recipient table

--B1/mx.dest.test
Content-Type: text/rfc822-headers

Return-Path: <${verp}>
From: app@origin.test
To: ${rcpt}
Subject: hello

--B1/mx.dest.test--
`;
}

function arf(verp: string, rcpt: string): string {
  return `From: <abuse@provider.test>
To: <fbl@${BOUNCES}>
Subject: FW: hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
127.0.0.1 on Thu, 8 Mar 2005 14:00:00 EDT.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <${verp}>
Original-Rcpt-To: <${rcpt}>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Reporting-MTA: dns; mail.provider.test

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <app@origin.test>
To: <${rcpt}>
Subject: hello

Hello.
--part1_13d.2e68ed54_boundary--
`;
}

Deno.test("mail leaves with a VERP return path; a later DSN bounces the recipient, suppresses it, and is told once", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  const { relay, inboundPort } = await setup(sink);
  try {
    const hook = await relay.api("/v1/webhooks", {
      body: { url: receiver.url, events: ["bounced"] },
    });
    receiver.secrets.push(hook.json.secret);
    const sent = await relay.api("/v1/messages", {
      body: { from: "app@origin.test", to: "gone@dest.test", subject: "hello", text: "Hello." },
    });
    assert.equal(sent.status, 202);
    const [delivered] = await sink.waitFor(1);
    const verp = delivered!.from;
    assert.match(verp, new RegExp(`^b-${sent.json.id.toLowerCase()}-0-[0-9a-f]{16}@${BOUNCES}$`));
    assert.ok(/^From: app@origin\.test$/m.test(delivered!.headers), "the From header is kept");
    await waitUntil(
      async () => (await getMessage(relay, sent.json.id)).recipients[0]!.status === "delivered",
      "the delivery recorded",
    );

    const r = await report(inboundPort, "", verp, dsn(verp, "gone@dest.test"));
    assert.equal(r.data?.code, 250, r.data?.raw ?? r.rcpt.raw);
    await waitUntil(
      async () => (await getMessage(relay, sent.json.id)).recipients[0]!.status === "bounced",
      "the asynchronous bounce recorded",
    );
    const view = await getMessage(relay, sent.json.id);
    assert.equal(view.recipients[0]!.category, "invalid_recipient");
    assert.match(
      view.recipients[0]!.last_reply!,
      /^asynchronous bounce: 5\.1\.1 smtp; 550 5\.1\.1/,
    );
    assert.deepEqual(view.events.map((e) => e.type), ["accepted", "delivered", "bounced"]);
    const suppression = await relay.api("/v1/suppressions/gone@dest.test");
    assert.equal(suppression.status, 200, JSON.stringify(suppression.json));
    assert.equal(suppression.json.reason, "invalid_recipient");
    await receiver.waitFor(() => receiver.accepted.length === 1, "the bounced webhook");
    assert.equal(receiver.accepted[0]!.payload.data.recipient, "gone@dest.test");

    // The same DSN again (a retransmission) changes nothing.
    const again = await report(inboundPort, "", verp, dsn(verp, "gone@dest.test"));
    assert.equal(again.data?.code, 250);
    await relay.waitForLog((l) => l.event === "inbound.report" && l.recorded === 0);
    assert.equal((await getMessage(relay, sent.json.id)).events.length, 3);
  } finally {
    await relay[Symbol.asyncDispose]();
    await receiver.close();
    await sink.close();
  }
});

Deno.test("a feedback report to the bounce domain records a complaint and suppresses the address", async () => {
  const sink = await startSink();
  const { relay, inboundPort } = await setup(sink);
  try {
    const [id] = await submit(relay, [{
      from: "app@origin.test",
      to: "carol@dest.test",
      tag: "c",
    }]);
    const [delivered] = await sink.waitFor(1);
    const r = await report(
      inboundPort,
      "abuse@provider.test",
      `fbl@${BOUNCES}`,
      arf(delivered!.from, "carol@dest.test"),
    );
    assert.equal(r.data?.code, 250, r.data?.raw ?? r.rcpt.raw);
    await waitUntil(
      async () => (await getMessage(relay, id!)).events.some((e) => e.type === "complained"),
      "the complaint recorded",
    );
    const suppression = await relay.api("/v1/suppressions/carol@dest.test");
    assert.equal(suppression.status, 200);
    assert.equal(suppression.json.reason, "complaint");
    await waitUntil(
      async () => (await relay.api("/v1/events?types=complained")).json.data.length === 1,
      "the complaint in the event log",
    );
    // A later message to the address is not attempted.
    const next = await relay.api("/v1/messages", {
      body: { from: "app@origin.test", to: "carol@dest.test", text: "again" },
    });
    await waitUntil(
      async () => (await getMessage(relay, next.json.id)).recipients[0]!.status === "suppressed",
      "the next message suppressed",
    );
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("the inbound listener refuses forged VERP tags and other domains, and null senders stay null", async () => {
  const sink = await startSink();
  const { relay, inboundPort } = await setup(sink);
  try {
    const [id] = await submit(relay, [{ from: "", to: "x@dest.test", tag: "null-sender" }]);
    const [m] = await sink.waitFor(1);
    assert.equal(m!.from, "", "a message with the null sender keeps it (no VERP)");
    const forged = `b-${id!.toLowerCase()}-0-0000000000000000@${BOUNCES}`;
    const r1 = await report(inboundPort, "", forged, dsn(forged, "x@dest.test"));
    assert.equal(r1.rcpt.code, 550, r1.rcpt.raw);
    const r2 = await report(inboundPort, "", "postmaster@elsewhere.test", "x");
    assert.equal(r2.rcpt.code, 554, r2.rcpt.raw);
    const r3 = await report(inboundPort, "", `fbl@${BOUNCES}`, "Subject: hi\n\nnot a report\n");
    assert.equal(r3.data?.code, 250, "taken, and ignored");
    await relay.waitForLog((l) => l.event === "inbound.report" && typeof l.ignored === "string");
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

Deno.test("the inbound listener refuses a bare LF, bare CR or NUL in DATA with 550 5.5.2 and records nothing", async () => {
  const sink = await startSink();
  const { relay, inboundPort } = await setup(sink);
  try {
    const [id] = await submit(relay, [{ from: "app@origin.test", to: "gone@dest.test", tag: "s" }]);
    const [delivered] = await sink.waitFor(1);
    const verp = delivered!.from;
    await waitUntil(
      async () => (await getMessage(relay, id!)).recipients[0]!.status === "delivered",
      "the delivery recorded",
    );
    // A genuine DSN whose text carries the smuggling bytes: refused whole, never applied.
    const genuine = dsn(verp, "gone@dest.test").replace(/\n/g, "\r\n");
    const client = await SmtpClient.open(inboundPort);
    try {
      await client.hello("mx.dest.test");
      for (const [name, bad] of [["bare LF", "\n"], ["bare CR", "\r"], ["NUL", "\0"]]) {
        await client.beginData("", verp);
        await client.write(genuine.replace("Your message", `Your${bad}message`));
        const reply = await client.endData();
        assert.match(reply.raw, /^550 5\.5\.2 /, `${name}: ${reply.raw}`);
      }
    } finally {
      await client.quit();
    }
    const refusals = relay.logs.filter((l) =>
      l.event === "smtp.rejected" && l.reason === "bare_line_ending"
    );
    assert.equal(refusals.length, 3, "each refusal is logged");
    assert.ok(!relay.logs.some((l) => l.event === "inbound.report"), "no report was read");
    assert.equal((await getMessage(relay, id!)).recipients[0]!.status, "delivered");
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});

/** Each recipient's own return path, from what the sink received. */
function returnPaths(sink: Sink): Map<string, string> {
  return new Map(sink.messages.flatMap((m) => m.to.map((rcpt) => [rcpt, m.from] as const)));
}

/** Waits for the inbound listener to have read `n` reports in all. */
function reportsRead(relay: Relay, n: number) {
  return waitUntil(
    () => relay.logs.filter((l) => l.event === "inbound.report").length >= n,
    `${n} reports read`,
  );
}

Deno.test("one recipient cannot bounce or complain for another: each has its own MAC'd return path, and a report applies only to the recipient it names", async () => {
  const sink = await startSink();
  const { relay, inboundPort } = await setup(sink);
  try {
    const bob = "bob@dest.test", carol = "carol@dest.test";
    const [id] = await submit(relay, [{ from: "app@origin.test", to: [bob, carol], tag: "two" }]);
    await sink.waitFor(2);
    const paths = returnPaths(sink);
    assert.equal(sink.messages.length, 2, "one transaction per recipient");
    assert.match(paths.get(bob)!, new RegExp(`^b-${id!.toLowerCase()}-0-[0-9a-f]{16}@${BOUNCES}$`));
    assert.match(
      paths.get(carol)!,
      new RegExp(`^b-${id!.toLowerCase()}-1-[0-9a-f]{16}@${BOUNCES}$`),
    );
    await waitUntil(
      async () => (await getMessage(relay, id!)).recipients.every((r) => r.status === "delivered"),
      "both deliveries recorded",
    );
    const carolUntouched = async (why: string) => {
      const view = await getMessage(relay, id!);
      const row = view.recipients.find((r) => r.address === carol)!;
      assert.equal(row.status, "delivered", why);
      assert.ok(!view.events.some((e) => e.recipient === carol && e.type !== "delivered"), why);
      const listed = await relay.api(`/v1/suppressions/${carol}`);
      assert.equal(listed.status, 404, `${why}: carol is not suppressed`);
    };

    // Bob mails a DSN naming Carol to the return path he received.
    const fromBob = paths.get(bob)!;
    const r1 = await report(inboundPort, "", fromBob, dsn(fromBob, carol));
    assert.equal(r1.data?.code, 250, r1.data?.raw ?? r1.rcpt.raw);
    await reportsRead(relay, 1);
    await carolUntouched("a DSN naming carol, sent to bob's return path");

    // Bob files an abuse report naming Carol, through the feedback-loop mailbox.
    const r2 = await report(
      inboundPort,
      "abuse@provider.test",
      `fbl@${BOUNCES}`,
      arf(fromBob, carol),
    );
    assert.equal(r2.data?.code, 250, r2.data?.raw ?? r2.rcpt.raw);
    await reportsRead(relay, 2);
    await carolUntouched("an ARF report naming carol, with bob's return path");

    // Bob edits his return path to name Carol's index: the MAC fails, at RCPT and inside a report.
    const edited = fromBob.replace(`${id!.toLowerCase()}-0-`, `${id!.toLowerCase()}-1-`);
    const r3 = await report(inboundPort, "", edited, dsn(edited, carol));
    assert.equal(r3.rcpt.code, 550, r3.rcpt.raw);
    await relay.waitForLog((l) => l.event === "report.forged" && l.return_path === edited);
    const tampered = paths.get(carol)!.replace(/-[0-9a-f]{16}@/, `-${"0".repeat(16)}@`);
    const r4 = await report(
      inboundPort,
      "abuse@provider.test",
      `fbl@${BOUNCES}`,
      arf(tampered, carol),
    );
    assert.equal(r4.data?.code, 250, "taken, and dropped");
    await reportsRead(relay, 3);
    await relay.waitForLog((l) => l.event === "report.forged" && l.return_path === tampered);
    assert.ok(
      relay.logs.some((l) =>
        l.event === "inbound.report" && l.recorded === 0 && /MAC/.test(String(l.ignored))
      ),
      "the forged report is logged as dropped",
    );
    await carolUntouched("reports with a tampered MAC");

    // A genuine DSN for Carol, to her own return path, still works.
    const r5 = await report(inboundPort, "", paths.get(carol)!, dsn(paths.get(carol)!, carol));
    assert.equal(r5.data?.code, 250, r5.data?.raw ?? r5.rcpt.raw);
    await waitUntil(
      async () =>
        (await getMessage(relay, id!)).recipients.find((r) => r.address === carol)!.status ===
          "bounced",
      "carol's genuine bounce recorded",
    );
    const suppression = await relay.api(`/v1/suppressions/${carol}`);
    assert.equal(suppression.status, 200);
    assert.equal(suppression.json.reason, "invalid_recipient");
  } finally {
    await relay[Symbol.asyncDispose]();
    await sink.close();
  }
});
