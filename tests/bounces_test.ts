/**
 * Bounces end to end: every final failure is classified and stored with its event, a permanent
 * one sends an RFC 3464 DSN to the envelope sender (never to <>, never about a DSN, not when the
 * credential opted out), expiry after max age, and suppression of hard bounces and of addresses
 * that expire again and again.
 */
import assert from "node:assert/strict";
import type { ReceivedMessage } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { eventually, queueDrained, startRelayWithSinks } from "./support/relay_fixture.ts";
import { createCredential, getMessage, waitForStatus } from "./support/relay_api.ts";
import { waitUntil } from "./support/operations.ts";

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { POSTERN_RETRY_SCHEDULE: "1s", ...extra };
}

/** DSNs the sink received: mail from the null sender. */
function dsns(messages: readonly ReceivedMessage[]): ReceivedMessage[] {
  return messages.filter((m) => m.from === "");
}

/** The parts of a multipart message, split at its boundary. */
function parts(message: ReceivedMessage): string[] {
  const boundary = /boundary="([^"]+)"/.exec(message.headers)![1]!;
  const body = message.text.slice(message.headers.length);
  return body.split(`--${boundary}`).slice(1, -1);
}

Deno.test("a 550 5.1.1 bounces at once, sends an RFC 3464 DSN from <> to the sender, and suppresses the address", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: {
        "nobody@dest.test": {
          code: 550,
          message: "5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown",
        },
      },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  const [id] = await submit(relay, [{
    from: "app@origin.test",
    to: "nobody@dest.test",
    tag: "bad",
  }]);
  const bounced = await waitForStatus(relay, id!, "bounced");
  assert.equal(bounced.recipients[0]!.category, "invalid_recipient");
  const event = bounced.events.find((e) => e.type === "bounced")!;
  assert.equal(event.category, "invalid_recipient", "the category is stored with the event");
  assert.match(event.reply!, /550 5\.1\.1/);

  const [dsn] = await eventually(() => {
    const got = dsns(sink.messages);
    return got.length > 0 ? got : undefined;
  }, "the DSN at the sink");
  assert.deepEqual(dsn!.to, ["app@origin.test"]);
  assert.match(
    dsn!.headers,
    /^Content-Type: multipart\/report; report-type=delivery-status;/im,
  );
  assert.match(dsn!.headers, /^Auto-Submitted: auto-replied$/m);
  const [human, status, original] = parts(dsn!);
  assert.match(human!, /nobody@dest\.test/);
  assert.match(status!, /Content-Type: message\/delivery-status/);
  assert.match(status!, /^Reporting-MTA: dns; relay\.test$/m);
  assert.match(status!, /^Final-Recipient: rfc822; nobody@dest\.test$/m);
  assert.match(status!, /^Action: failed$/m);
  assert.match(status!, /^Status: 5\.1\.1$/m);
  assert.match(status!, /^Remote-MTA: dns; 127\.0\.0\.1$/m);
  assert.match(status!, /^Diagnostic-Code: smtp; 550 5\.1\.1 <nobody@dest\.test>/m);
  assert.match(original!, /Content-Type: text\/rfc822-headers/);
  assert.match(original!, /^Subject: test bad$/m);
  assert.match(original!, /^X-Postern-Test-Id: bad$/m);
  assert.doesNotMatch(original!, /Body of bad/, "headers only, not the body");

  const list = await relay.api("/v1/suppressions");
  assert.equal(list.status, 200);
  assert.deepEqual(
    list.json.data.map((s: { address: string; reason: string; source: string }) => [
      s.address,
      s.reason,
      s.source,
    ]),
    [["nobody@dest.test", "invalid_recipient", "bounce"]],
  );

  // Later mail to the address is not attempted: recorded `suppressed` at intake.
  const tries = sink.attempts.get("nobody@dest.test");
  const [again] = await submit(relay, [
    { from: "app@origin.test", to: ["Nobody@dest.test", "ok@dest.test"], tag: "again" },
  ]);
  const view = await getMessage(relay, again!);
  assert.equal(view.recipients[0]!.status, "suppressed");
  assert.equal(view.recipients[0]!.category, "invalid_recipient");
  assert.ok(
    view.events.some((e) => e.type === "suppressed" && e.recipient === "Nobody@dest.test"),
    JSON.stringify(view.events),
  );
  await waitUntil(
    async () => (await getMessage(relay, again!)).recipients[1]!.status === "delivered",
    "the other recipient delivered",
  );
  assert.equal(sink.attempts.get("nobody@dest.test"), tries, "no new RCPT for it");
});

Deno.test("a 552 at the end of DATA bounces as mailbox_full with a DSN, and does not suppress", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: { "full@dest.test": { atData: { code: 552, message: "5.2.2 Mailbox full" } } },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  const [id] = await submit(relay, [{
    from: "app@origin.test",
    to: "full@dest.test",
    tag: "full",
  }]);
  const bounced = await waitForStatus(relay, id!, "bounced");
  assert.equal(bounced.recipients[0]!.category, "mailbox_full");
  const dsn = await eventually(() => dsns(sink.messages)[0], "the DSN");
  assert.match(parts(dsn)[1]!, /^Status: 5\.2\.2$/m);
  assert.equal((await relay.api("/v1/suppressions/full@dest.test")).status, 404);
});

Deno.test("past max age a recipient expires with reason expired; each deferral records its reply and next attempt; repeated expiry suppresses", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      behaviors: {
        "soft@dest.test": { code: 451, message: "4.2.0 Mailbox temporarily unavailable" },
      },
    }],
    // Retries every 200 ms inside the 3 s max age: the two deferrals asked for below need two
    // attempts in 3 s, which leaves room for each attempt to take over a second on a busy machine.
    env: env({
      POSTERN_MAX_AGE: "3s",
      POSTERN_RETRY_SCHEDULE: "200ms",
      POSTERN_SUPPRESS_AFTER_EXPIRIES: "2",
    }),
  });
  const { relay, sink } = fx;
  const expireOnce = async (tag: string) => {
    const [id] = await submit(relay, [{ from: "app@origin.test", to: "soft@dest.test", tag }]);
    return await waitForStatus(relay, id!, "bounced", 30_000);
  };
  const first = await expireOnce("soft1");
  assert.equal(first.recipients[0]!.category, "expired");
  const deferrals = first.events.filter((e) => e.type === "deferred");
  assert.ok(deferrals.length >= 2, `${deferrals.length} deferrals before expiry`);
  for (const d of deferrals) {
    assert.match(d.reply!, /451 4\.2\.0 Mailbox temporarily unavailable/);
    assert.ok(d.next_attempt_at, "each deferral names its next attempt");
    assert.ok(Date.parse(d.next_attempt_at!) > Date.parse(d.at));
    // The final attempt is moved to the deadline, never past it.
    assert.ok(Date.parse(d.next_attempt_at!) <= Date.parse(first.created_at) + 3_000);
  }
  const last = first.events.at(-1)!;
  assert.equal(last.type, "expired");
  assert.equal(last.category, "expired");
  const dsn = await eventually(() => dsns(sink.messages)[0], "the expiry DSN");
  assert.match(parts(dsn)[1]!, /^Action: failed$/m);
  assert.match(parts(dsn)[1]!, /^Status: 4\.4\.7$/m);
  assert.equal(
    (await relay.api("/v1/suppressions/soft@dest.test")).status,
    404,
    "once is no streak",
  );

  await expireOnce("soft2");
  const s = await eventually(async () => {
    const res = await relay.api("/v1/suppressions/soft@dest.test");
    return res.status === 200 ? res.json : undefined;
  }, "the suppression after the second expiry");
  assert.equal(s.reason, "expired");
  assert.equal(s.source, "expiry");
  const [third] = await submit(relay, [{
    from: "app@origin.test",
    to: "soft@dest.test",
    tag: "soft3",
  }]);
  assert.equal((await getMessage(relay, third!)).recipients[0]!.status, "suppressed");
});

Deno.test("no DSN goes to <>, none answers a DSN, and none goes to a credential that opted out", async () => {
  await using fx = await startRelayWithSinks({
    sinks: [{
      defaultBehavior: { code: 550, message: "5.1.1 User unknown" },
      behaviors: { "app@origin.test": "accept", "optout@origin.test": "accept" },
    }],
    env: env(),
  });
  const { relay, sink } = fx;
  const [fromNull, aReport] = await submit(relay, [
    { from: "", to: "gone1@dest.test", tag: "null-sender" },
    {
      from: "app@origin.test",
      to: "gone2@dest.test",
      tag: "report",
      headers: [
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
      ],
    },
  ]);
  await waitForStatus(relay, fromNull!, "bounced");
  await waitForStatus(relay, aReport!, "bounced");

  // A credential with dsn=false, sending over the HTTP API with its key.
  const cred = await createCredential(relay, "quiet-app");
  const patched = await relay.api(`/v1/credentials/${cred.id}`, {
    method: "PATCH",
    body: { dsn: false },
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  const sent = await relay.api("/v1/messages", {
    token: cred.password,
    body: { from: "optout@origin.test", to: "gone3@dest.test", subject: "quiet", text: "x" },
  });
  assert.equal(sent.status, 202, JSON.stringify(sent.json));
  await waitForStatus(relay, sent.json.id, "bounced");

  // A control that does get its DSN proves DSNs were flowing all along.
  const [control] = await submit(relay, [{
    from: "app@origin.test",
    to: "gone4@dest.test",
    tag: "control",
  }]);
  await waitForStatus(relay, control!, "bounced");
  const got = await eventually(() => dsns(sink.messages)[0], "the control's DSN");
  assert.match(got.text, /gone4@dest\.test/);
  await queueDrained(relay);
  const all = dsns(sink.messages);
  assert.equal(all.length, 1, all.map((m) => m.to.join()).join("; "));
  assert.ok(sink.messages.every((m) => m.to.every((t) => t !== "")), "nothing to <>");
  const logged = relay.logs.filter((l) => l.event === "dsn.queued");
  assert.equal(logged.length, 1, JSON.stringify(logged));
});
