/**
 * The sandbox end to end: the relay as a child process, every simulator address sent over SMTP
 * (nodemailer, swaks, a raw client) and over the send API, and what a consumer would check: the
 * message's recipients and events, the webhooks a verifying receiver gets, the suppression list,
 * and for test mode that nothing reaches a real destination (a loopback sink stands in for the
 * internet).
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import type SMTPTransport from "nodemailer/lib/smtp-transport";
import { freePort, type Relay, runCommand, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook_receiver.ts";
import {
  createCredential,
  type MessageView,
  type NewCredential,
  queuedId,
  waitForMessage,
} from "./support/relay_api.ts";
import { SmtpClient } from "./support/smtp_client.ts";
import { EVENT_TYPES } from "../core/events/vocabulary.ts";

const SIM = "simulator.postern.invalid";
const FINAL = new Set(["delivered", "bounced", "suppressed"]);

function env(sink: Sink, extra: Record<string, string> = {}): Record<string, string> {
  return {
    // Anything not at the simulator domain would go to the sink: it stands in for the internet.
    POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_EVENT_SETTLE: "200ms",
    POSTERN_WEBHOOK_ALLOW: "127.0.0.0/8",
    POSTERN_WEBHOOK_RETRY_SCHEDULE: ["0s", ...Array(300).fill("200ms")].join(","),
    POSTERN_COMMAND_TIMEOUT: "3s",
    POSTERN_RCPT_TIMEOUT: "3s", // timeout@ never answers RCPT
    POSTERN_SANDBOX_RETRY_SCHEDULE: "1s",
    POSTERN_SANDBOX_MAX_AGE: "25s",
    POSTERN_SANDBOX_GREYLIST: "1s",
    POSTERN_SANDBOX_SLOW_DELAY: "1500ms",
    // Twenty-odd messages are watched at once through the API.
    POSTERN_HTTP_RATE_LIMIT: "10000/s",
    ...extra,
  };
}

function transport(relay: Relay, credential: NewCredential) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port: relay.smtpPort,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: credential.username, pass: credential.password },
  } as SMTPTransport.Options);
}

async function register(relay: Relay, receiver: WebhookReceiver) {
  const res = await relay.api("/v1/webhooks", {
    body: {
      url: receiver.url,
      events: EVENT_TYPES.filter((t) => t !== "failed"),
    },
  });
  assert.equal(res.status, 201, JSON.stringify(res.json));
  receiver.secrets.push(res.json.secret);
}

async function sendHttp(relay: Relay, to: string, extra: Record<string, unknown> = {}) {
  const res = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to, subject: `to ${to}`, text: "Hello.", ...extra },
  });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  return res.json.id as string;
}

const final = (m: MessageView) => m.recipients.every((r) => FINAL.has(r.status));

/** What a consumer expects for each delivery address: final status and event types in order. */
const EXPECTED: Record<string, { status: string; events: string[]; category?: string }> = {
  delivered: { status: "delivered", events: ["accepted", "delivered"] },
  bounce: { status: "bounced", events: ["accepted", "bounced"], category: "invalid_recipient" },
  "mailbox-full": { status: "bounced", events: ["accepted", "bounced"] },
  defer: { status: "delivered", events: ["accepted", "deferred", "delivered"] },
  greylist: {
    status: "delivered",
    events: ["accepted", "deferred", "delivered"],
    category: "greylisted",
  },
  throttle: { status: "delivered", events: ["accepted", "deferred", "deferred", "delivered"] },
  timeout: { status: "bounced", events: ["accepted", "deferred"] },
  "tls-required": { status: "delivered", events: ["accepted", "delivered"] },
  complaint: { status: "delivered", events: ["accepted", "delivered", "complained"] },
  ooo: { status: "delivered", events: ["accepted", "delivered"] },
  suppressed: { status: "suppressed", events: ["accepted", "suppressed"] },
};

Deno.test("every simulator address, over SMTP and over HTTP, ends with the events and webhooks a consumer expects", async () => {
  const sink = await startSink();
  const receiver = await startWebhookReceiver();
  await using relay = await startRelay({ env: env(sink) });
  try {
    await register(relay, receiver);
    const listed = await relay.api("/v1/sandbox");
    assert.equal(listed.status, 200);
    assert.equal(listed.json.domain, SIM);
    const addresses = (listed.json.addresses as { address: string }[]).map((a) => a.address);
    for (
      const local of [...Object.keys(EXPECTED), "smtp-421", "smtp-451", "smtp-slow", "smtp-552"]
    ) {
      assert.ok(addresses.includes(`${local}@${SIM}`), `GET /v1/sandbox lists ${local}@`);
    }

    const credential = await createCredential(relay, "sandbox-app");
    const mailer = transport(relay, credential);
    // All addresses at once, each over both doors, told apart by a +suffix.
    const sent = await Promise.all(
      Object.keys(EXPECTED).flatMap((local) => [
        mailer.sendMail({
          from: "app@origin.test",
          to: `${local}+smtp@${SIM}`,
          subject: `smtp ${local}`,
          text: "Hello.",
        }).then((info) => ({ local, door: "smtp", id: queuedId(info.response) })),
        sendHttp(relay, `${local}+http@${SIM}`).then((id) => ({ local, door: "http", id })),
      ]),
    );
    mailer.close();

    const views = await Promise.all(
      sent.map(async (s) => ({ ...s, view: await waitForMessage(relay, s.id, final, 90_000) })),
    );
    // complaint@: the report lands after the delivery.
    for (const v of views.filter((v) => v.local === "complaint")) {
      v.view = await waitForMessage(
        relay,
        v.id,
        (m) => m.events.some((e) => e.type === "complained"),
        30_000,
      );
    }
    for (const { local, door, view } of views) {
      const want = EXPECTED[local]!;
      const what = `${local}@ over ${door}: ${JSON.stringify(view)}`;
      const rcpt = view.recipients[0]!;
      assert.equal(rcpt.address, `${local}+${door}@${SIM}`, "the +suffix is kept");
      assert.equal(rcpt.status, want.status, what);
      const types = view.events.map((e) => e.type);
      if (local === "timeout") {
        assert.ok(types.filter((t) => t === "deferred").length >= 1, what);
        assert.equal(types.at(-1), "expired", what);
        assert.match(view.events.find((e) => e.type === "deferred")!.reply ?? "", /timeout/i);
      } else {
        assert.deepEqual(types, want.events, what);
      }
      if (want.category) {
        const last = view.events.find((e) => e.type === "bounced" || e.type === "deferred")!;
        assert.equal(last.category, want.category, what);
      }
      if (local === "bounce") assert.match(rcpt.last_reply ?? "", /^550 5\.1\.1/);
      if (local === "mailbox-full") assert.match(rcpt.last_reply ?? "", /^552 5\.2\.2/);
      if (local === "defer") assert.match(view.events[1]!.reply ?? "", /^451 4\.3\.0/);
      if (local === "greylist") assert.match(view.events[1]!.reply ?? "", /^451 4\.7\.1/);
      if (local === "throttle") assert.match(view.events[1]!.reply ?? "", /^421 4\.7\.0/);
      if (local === "tls-required") {
        assert.match(view.events.at(-1)!.tls ?? "", /^TLSv1\.[23]$/, "delivered over TLS");
      }
    }

    // The webhooks a consumer's endpoint got: every event above, signed, once each.
    const expectedHooks = views.flatMap(({ view }) =>
      view.events.filter((e) => e.type !== "accepted").map((e) => `${e.type} ${e.recipient}`)
    );
    const seen = () =>
      new Set(receiver.accepted.map((r) => `${r.payload.type} ${r.payload.data.recipient}`));
    await receiver.waitFor(
      () => expectedHooks.every((h) => seen().has(h)),
      "a webhook for every recipient event",
      60_000,
    );

    // Suppressions: bounce@ and complaint@ go on the sandbox's own list, never the account's.
    const real = await relay.api("/v1/suppressions");
    assert.deepEqual(real.json.data, [], "the account's list holds no simulator address");
    const own = await relay.api("/v1/sandbox/suppressions");
    const onSandboxList = (own.json.data as { address: string }[]).map((s) => s.address).sort();
    assert.deepEqual(
      onSandboxList,
      [
        `bounce+http@${SIM}`,
        `bounce+smtp@${SIM}`,
        `complaint+http@${SIM}`,
        `complaint+smtp@${SIM}`,
      ],
    );
    // The sandbox's list works as the real one does: a listed address is not tried again …
    const again = await sendHttp(relay, `bounce+smtp@${SIM}`);
    const suppressedView = await waitForMessage(relay, again, final, 30_000);
    assert.equal(suppressedView.recipients[0]!.status, "suppressed");
    // … until it is taken off.
    const removed = await relay.api(`/v1/sandbox/suppressions/bounce+smtp@${SIM}`, {
      method: "DELETE",
    });
    assert.equal(removed.status, 200);
    const third = await sendHttp(relay, `bounce+smtp@${SIM}`);
    const rebounced = await waitForMessage(relay, third, final, 30_000);
    assert.equal(rebounced.recipients[0]!.status, "bounced");

    // ooo@: the auto-reply came and was not taken for a bounce.
    await relay.waitForLog((l) => l.event === "sandbox.auto_reply", 5_000);
    // throttle@: the simulator site's backoff engaged.
    await relay.waitForLog((l) => l.event === "site.throttled", 5_000);
    // The DSNs for bounce@ (three), mailbox-full@ and the expired timeout@ went to the sender.
    const dsns = await sink.waitFor(7, { timeoutMs: 30_000 });
    assert.ok(dsns.every((m) => m.to[0] === "app@origin.test"));
  } finally {
    await receiver.close();
    await sink.close();
  }
});

Deno.test("submission faults: smtp-421@, smtp-451@, smtp-552@ and smtp-slow@ over SMTP and HTTP, and a credential's sandbox_submission", async () => {
  const sink = await startSink();
  await using relay = await startRelay({
    env: env(sink, { POSTERN_TRUSTED_NETWORKS: "127.0.0.0/8" }),
  });
  try {
    const message = "From: app@origin.test\r\nSubject: fault\r\n\r\nHello.\r\n";
    // 421 4.3.2 at RCPT TO, and the connection is closed.
    const a = await SmtpClient.open(relay.smtpPort);
    await a.hello();
    assert.equal((await a.command("MAIL FROM:<app@origin.test>")).code, 250);
    const refused = await a.command(`RCPT TO:<smtp-421@${SIM}>`);
    assert.equal(refused.code, 421);
    assert.match(refused.raw, /^421 4\.3\.2 /);
    await assert.rejects(a.command("NOOP", 5_000), "the relay closed the connection");
    a.close();

    // 451 4.3.0 and 552 5.3.4 after the final dot; the session goes on.
    const b = await SmtpClient.open(relay.smtpPort);
    await b.hello();
    const r451 = await b.send("app@origin.test", `smtp-451@${SIM}`, message);
    assert.match(r451.raw, /^451 4\.3\.0 /);
    const r552 = await b.send("app@origin.test", `smtp-552+big@${SIM}`, message);
    assert.match(r552.raw, /^552 5\.3\.4 /);
    // smtp-slow@: the 250 comes, late.
    const started = Date.now();
    const slow = await b.send("app@origin.test", `smtp-slow@${SIM}`, message);
    assert.equal(slow.code, 250, slow.raw);
    assert.ok(Date.now() - started >= 1_500, "the 250 came after POSTERN_SANDBOX_SLOW_DELAY");
    await b.quit();

    // Over HTTP: 503 with Retry-After, 413, and a late 202.
    for (const local of ["smtp-421", "smtp-451"]) {
      const res = await relay.api("/v1/messages", {
        body: { from: "app@origin.test", to: `${local}@${SIM}`, text: "x" },
      });
      assert.equal(res.status, 503, JSON.stringify(res.json));
      assert.equal(res.json.error.code, "unavailable");
      assert.ok(Number(res.headers.get("retry-after")) > 0, "Retry-After is set");
    }
    const big = await relay.api("/v1/messages", {
      body: { from: "app@origin.test", to: `smtp-552@${SIM}`, text: "x" },
    });
    assert.equal(big.status, 413);
    const t0 = Date.now();
    const slowId = await sendHttp(relay, `smtp-slow+http@${SIM}`);
    assert.ok(Date.now() - t0 >= 1_500);

    // Nothing from the refused ones was queued: the log has the two slow ones only.
    const search = await relay.api("/v1/messages?limit=50");
    const queued = (search.json.data as { recipients: { address: string }[] }[])
      .flatMap((m) => m.recipients.map((r) => r.address));
    assert.deepEqual(queued.sort(), [`smtp-slow+http@${SIM}`, `smtp-slow@${SIM}`]);
    await waitForMessage(relay, slowId, final, 30_000);

    // A credential's sandbox_submission fault, for a client that cannot pick a recipient.
    const credential = await createCredential(relay, "jenkins");
    const patched = await relay.api(`/v1/credentials/${credential.id}`, {
      method: "PATCH",
      body: { sandbox_submission: "smtp-451" },
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.json.sandbox_submission, "smtp-451");
    const mailer = transport(relay, credential);
    await assert.rejects(
      mailer.sendMail({ from: "app@origin.test", to: "ops@dest.test", text: "x" }),
      (err: { responseCode?: number; response?: string }) =>
        err.responseCode === 451 && /4\.3\.0/.test(err.response ?? ""),
    );
    mailer.close();
    assert.equal(sink.messages.length, 0, "nothing left the relay");
  } finally {
    await sink.close();
  }
});

Deno.test("a credential's sandbox_submission over the send API: 503 with Retry-After for smtp-421 and smtp-451, 413 for smtp-552, nothing queued", async () => {
  const sink = await startSink();
  await using relay = await startRelay({ env: env(sink) });
  try {
    // Set on create, as a client that cannot pick a recipient (an app with a fixed address) needs.
    const created = await relay.api("/v1/credentials", {
      body: { name: "alertmanager", sandbox_submission: "smtp-421" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.json.sandbox_submission, "smtp-421");
    const { id, password: key } = created.json as { id: string; password: string };
    const setFault = async (fault: string | null) => {
      const res = await relay.api(`/v1/credentials/${id}`, {
        method: "PATCH",
        body: { sandbox_submission: fault },
      });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json.sandbox_submission, fault);
    };
    const sendAs = (to: string) =>
      relay.api("/v1/messages", {
        token: key,
        body: { from: "app@origin.test", to, subject: "fault", text: "Hello." },
      });

    for (const fault of ["smtp-421", "smtp-451"]) {
      if (fault !== "smtp-421") await setFault(fault);
      const res = await sendAs(`ops+${fault}@dest.test`);
      assert.equal(res.status, 503, `${fault}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, "unavailable");
      assert.match(res.json.error.message, new RegExp(fault));
      const retryAfter = Number(res.headers.get("retry-after"));
      assert.ok(retryAfter > 0, `${fault}: Retry-After is set`);
      assert.equal(res.json.error.details.retry_after_s, retryAfter);
    }
    await setFault("smtp-552");
    const big = await sendAs("ops+smtp-552@dest.test");
    assert.equal(big.status, 413, JSON.stringify(big.json));
    assert.equal(big.json.error.code, "payload_too_large");

    // Cleared, the same key and message are taken: the setting alone refused them.
    await setFault(null);
    const ok = await sendAs("ops+cleared@dest.test");
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const search = await relay.api("/v1/messages?limit=50");
    assert.equal(search.status, 200, JSON.stringify(search.json));
    const queued = (search.json.data as { recipients: { address: string }[] }[])
      .flatMap((m) => m.recipients.map((r) => r.address));
    assert.deepEqual(queued, ["ops+cleared@dest.test"], "nothing from the faults was queued");
  } finally {
    await sink.close();
  }
});

Deno.test("test mode: swaks and nodemailer mail goes through everything but reaches no destination, tagged test, outside the quota", async () => {
  const sink = await startSink();
  await using relay = await startRelay({ env: env(sink) });
  try {
    const created = await relay.api("/v1/credentials", {
      body: { name: "staging", test_mode: true, daily_quota: 1 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.json.test_mode, true, "the credential shows test_mode");
    const credential = created.json as NewCredential & { id: string };

    const swaks = await runCommand("swaks", [
      "--server",
      "127.0.0.1",
      "--port",
      String(relay.smtpPort),
      "--tls",
      "--auth",
      "PLAIN",
      "--auth-user",
      credential.username,
      "--auth-password",
      credential.password,
      "--from",
      "app@origin.test",
      "--to",
      "customer@dest.test",
      "--header",
      "Subject: staging run",
      "--timeout",
      "20",
    ]);
    assert.equal(swaks.code, 0, swaks.stdout + swaks.stderr);
    const line = swaks.stdout.split("\n").find((l) => l.includes("queued as"))!;
    const first = queuedId(line);
    // Over the daily quota of 1: test mode never counts, so these go through too.
    const mailer = transport(relay, credential);
    const more = [];
    for (const to of ["other@dest.test", `bounce@${SIM}`]) {
      const info = await mailer.sendMail({ from: "app@origin.test", to, text: "Hi." });
      more.push(queuedId(info.response));
    }
    mailer.close();

    const view = await waitForMessage(relay, first, final, 30_000);
    assert.equal(view.recipients[0]!.status, "delivered");
    assert.match(view.recipients[0]!.last_reply ?? "", /simulated/);
    const raw = await relay.api(`/v1/messages/${first}`);
    assert.equal(raw.json.test, true, "the delivery log shows test");
    assert.ok(raw.json.tags.includes("test"));
    await waitForMessage(relay, more[0]!, final, 30_000);
    const bounced = await waitForMessage(relay, more[1]!, final, 30_000);
    assert.equal(bounced.recipients[0]!.status, "bounced");

    // The DSN is queued by a commit of its own after the bounce's: wait for it.
    await relay.waitForLog((l) => l.event === "dsn.queued" && l.msg === bounced.id);
    // The log search and stats tell test mail apart by its tag.
    const search = await relay.api("/v1/messages?tag=test");
    assert.equal(search.json.data.length, 3 + 1, "three sends and the DSN about the bounce");
    const stats = await relay.api("/v1/stats?by=tag");
    assert.equal(stats.status, 200, JSON.stringify(stats.json));
    assert.ok(JSON.stringify(stats.json).includes('"test"'), JSON.stringify(stats.json));

    // Per request over HTTP, from an ordinary credential; then test mode off reaches the sink.
    const own = await createCredential(relay, "live");
    const res = await fetch(`http://127.0.0.1:${relay.httpPort}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${own.password}`, "content-type": "application/json" },
      body: JSON.stringify({
        from: "app@origin.test",
        to: "third@dest.test",
        text: "x",
        test: true,
      }),
    });
    assert.equal(res.status, 202);
    const httpTest = (await res.json()).id;
    await waitForMessage(relay, httpTest, final, 30_000);
    assert.equal(sink.messages.length, 0, "no test-mode message reached a destination");

    await relay.api(`/v1/credentials/${credential.id}`, {
      method: "PATCH",
      body: { test_mode: false, daily_quota: null },
    });
    await new Promise((r) => setTimeout(r, 1_100)); // test mode is cached for a second
    const live = transport(relay, credential);
    await live.sendMail({ from: "app@origin.test", to: "real@dest.test", text: "Live." });
    live.close();
    const [arrived] = await sink.waitFor(1, { timeoutMs: 30_000 });
    assert.equal(arrived!.to[0], "real@dest.test");
  } finally {
    await sink.close();
  }
});

Deno.test("an account in test mode by default keeps its mail in the sandbox until PATCHed off", async () => {
  const sink = await startSink();
  await using relay = await startRelay({ env: env(sink) });
  try {
    // origin.test is never verified here: the account sends as it all the same.
    const account = await relay.api("/v1/accounts", {
      body: { name: "staging", test_mode: true, require_verified_sender: false },
    });
    assert.equal(account.status, 201);
    assert.equal(account.json.test_mode, true, "the account shows test_mode");
    const asAccount = (path: string, init: RequestInit = {}) =>
      fetch(`http://127.0.0.1:${relay.httpPort}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${relay.adminToken}`,
          "content-type": "application/json",
          "x-postern-account": account.json.id,
        },
      }).then(async (r) => ({ status: r.status, json: await r.json() }));
    const send = (to: string) =>
      asAccount("/v1/messages", {
        method: "POST",
        body: JSON.stringify({ from: "app@origin.test", to, text: "x" }),
      });
    const sent = await send("someone@dest.test");
    assert.equal(sent.status, 202, JSON.stringify(sent.json));
    const deadline = Date.now() + 30_000;
    let view = await asAccount(`/v1/messages/${sent.json.id}`);
    while (view.json.recipients?.[0]?.status !== "delivered" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      view = await asAccount(`/v1/messages/${sent.json.id}`);
    }
    assert.equal(view.json.recipients[0].status, "delivered", JSON.stringify(view.json));
    assert.equal(view.json.test, true);
    assert.equal(sink.messages.length, 0, "test-mode mail reached no destination");

    const off = await relay.api(`/v1/accounts/${account.json.id}`, {
      method: "PATCH",
      body: { test_mode: false },
    });
    assert.equal(off.status, 200);
    assert.equal(off.json.test_mode, false);
    await new Promise((r) => setTimeout(r, 1_100)); // test mode is cached for a second
    assert.equal((await send("live@dest.test")).status, 202);
    const [arrived] = await sink.waitFor(1, { timeoutMs: 30_000 });
    assert.equal(arrived!.to[0], "live@dest.test");
  } finally {
    await sink.close();
  }
});

Deno.test("with VERP, ooo@'s auto-reply reaches the bounce domain and is not taken for a bounce", async () => {
  const sink = await startSink();
  const inboundPort = await freePort();
  await using relay = await startRelay({
    env: env(sink, {
      POSTERN_BOUNCE_DOMAIN: "bounces.relay.test",
      POSTERN_INBOUND_PORT: String(inboundPort),
    }),
  });
  try {
    const id = await sendHttp(relay, `ooo+verp@${SIM}`);
    const line = await relay.waitForLog((l) => l.event === "sandbox.auto_reply", 30_000);
    assert.equal(line.msg, id);
    assert.equal(line.recorded, 0);
    assert.equal(line.ignored, "not a delivery status or feedback report");
    const view = await waitForMessage(relay, id, final, 30_000);
    assert.deepEqual(view.events.map((e) => e.type), ["accepted", "delivered"]);
    assert.equal(sink.messages.length, 0, "no DSN: an auto-reply is not a bounce");
  } finally {
    await sink.close();
  }
});
