/**
 * The dashboard in a real browser (Debian's chromium, headless, through puppeteer-core) against
 * the real relay: sign in, watch a message sent over SMTP arrive, create a credential, and the
 * guards a browser user relies on (CSRF, account scopes, sessions, lockout). Screenshots of
 * every page land in tests/support/browser.ts SHOTS_DIR.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { type Sink, startSink } from "./support/sink.ts";
import { submit } from "./support/smtp_client.ts";
import { waitUntil } from "./support/operations.ts";
import { call, newAccount, newCredential, publish } from "./support/tenants.ts";
import { startDnsServer } from "./support/dns_server.ts";
import { startWebhookReceiver } from "./support/webhook_receiver.ts";
import { browserMissing, launchBrowser, SHOTS_DIR, type TestBrowser } from "./support/browser.ts";

const missing = browserMissing();
if (missing) console.warn(`dashboard browser tests are skipped: ${missing}`);
else console.log(`dashboard screenshots: ${SHOTS_DIR}`);

function relayEnv(sink: Sink, extra: Record<string, string> = {}): Record<string, string> {
  return {
    POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
    POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
    POSTERN_POLL_INTERVAL: "200ms",
    POSTERN_RETRY_SCHEDULE: "1h",
    ...extra,
  };
}

const base = (relay: Relay) => `http://127.0.0.1:${relay.httpPort}`;

async function mainText(page: Page): Promise<string> {
  return await page.$eval("body", (e) => (e as unknown as { innerText: string }).innerText);
}

/** Opens `/`, which leads to the sign-in form, and signs in with `token`. */
async function signIn(page: Page, relay: Relay, token: string, shot?: TestBrowser) {
  await page.goto(`${base(relay)}/`);
  assert.match(page.url(), /\/dashboard\/sign-in/, "`/` leads to the dashboard's sign-in");
  await shot?.shot(page, "00-sign-in");
  await page.type("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.doesNotMatch(page.url(), /sign-in/, await mainText(page));
}

async function open(page: Page, relay: Relay, path: string): Promise<number> {
  const res = await page.goto(`${base(relay)}/dashboard${path}`);
  return res?.status() ?? 0;
}

/** Submits the form holding `selector`'s button and waits for the page it leads to. */
async function submitForm(page: Page, buttonText: string): Promise<void> {
  const [button] = await page.$$(`xpath/.//button[normalize-space()="${buttonText}"]`);
  assert.ok(button, `a "${buttonText}" button`);
  await Promise.all([
    page.waitForNavigation(),
    (button as unknown as { click(): Promise<void> }).click(),
  ]);
}

Deno.test({
  name:
    "signed in with the admin token, a message sent over SMTP is found in Activity and its timeline says delivered",
  ignore: missing !== null,
  async fn() {
    const sink = await startSink({
      behaviors: { "later@dest.test": { code: 451, message: "4.7.1 try later" } },
    });
    const hooks = await startWebhookReceiver();
    await using relay = await startRelay({
      env: relayEnv(sink, { POSTERN_WEBHOOK_ALLOW: "127.0.0.1/32" }),
    });
    await using b = await launchBrowser();
    try {
      const page = await b.newPage();
      await signIn(page, relay, relay.adminToken, b);
      await b.shot(page, "01-overview-empty");
      assert.ok(!(await page.content()).includes(relay.adminToken), "the token is never shown");

      // A webhook endpoint, made on the Webhooks page, so the timeline can show its deliveries.
      assert.equal(await open(page, relay, "/webhooks"), 200);
      await page.type("#f-url", hooks.url);
      await submitForm(page, "Add endpoint");
      const signing = await page.$eval(".secret code", (e) => e.textContent ?? "");
      assert.match(signing, /^whsec_/, "the signing secret is shown once");
      hooks.secrets = [signing];
      await b.shot(page, "09-webhook-created");

      const [id] = await submit(relay, [
        { from: "app@origin.test", to: "reader@dest.test", tag: "dash-first" },
      ]);
      await sink.waitFor(1);

      await waitUntil(
        async () => {
          await open(page, relay, "/activity?recipient=reader%40dest.test");
          const text = await mainText(page);
          return text.includes("test dash-first") && text.includes("delivered");
        },
        "the message delivered in Activity",
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      await b.shot(page, "02-activity");

      await Promise.all([
        page.waitForNavigation(),
        page.click(`a[href="/dashboard/messages/${id}"]`),
      ]);
      assert.match(page.url(), new RegExp(`/dashboard/messages/${id}$`));
      const timeline = await page.$$eval(
        ".timeline li .badge:first-child",
        (els) => els.map((e) => e.textContent),
      );
      assert.ok(timeline.includes("accepted"), `timeline: ${timeline}`);
      assert.ok(timeline.includes("delivered"), `timeline: ${timeline}`);
      const text = await mainText(page);
      assert.match(text, /remote host 127\.0\.0\.1/, "the attempt names the remote host");
      assert.match(text, /250/, "and its reply");
      await hooks.waitFor(() => hooks.accepted.length >= 1, "a webhook delivery", 30_000);
      await waitUntil(
        async () => {
          await open(page, relay, `/messages/${id}`);
          return (await mainText(page)).includes(`webhook ${hooks.url} delivered`);
        },
        "the webhook delivery on the timeline",
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      await b.shot(page, "03-message");

      // The other pages, each with something on it.
      assert.equal(await open(page, relay, "/domains"), 200);
      await page.type("#f-name", "shop.example.test");
      await submitForm(page, "Add domain");
      const domainPage = new URL(page.url()).pathname.replace("/dashboard", "");
      const records = await mainText(page);
      assert.match(records, /_domainkey\.shop\.example\.test/, "the DKIM record to publish");
      assert.match(records, /v=spf1/, "the SPF record");
      assert.ok((await page.$$("button[data-copy]:not([hidden])")).length >= 3, "copy buttons");
      await b.shot(page, "04-domain");
      assert.equal(await open(page, relay, "/domains"), 200);
      await b.shot(page, "05-domains");

      assert.equal(await open(page, relay, "/suppressions"), 200);
      await page.type("#f-address", "gone@dest.test");
      await page.type("#f-reason", "asked to stop");
      await submitForm(page, "Add");
      assert.match(await mainText(page), /gone@dest\.test is suppressed/);
      await b.shot(page, "06-suppressions");
      await page.type("#f-q", "gone@dest.test");
      await submitForm(page, "Find");
      assert.match(await mainText(page), /asked to stop/);
      await submitForm(page, "Remove");
      assert.match(await mainText(page), /gone@dest\.test removed/);
      assert.equal((await call(relay, "/v1/suppressions/gone%40dest.test")).status, 404);

      // A deferred message: its page says why it waits, and the queue steers its site.
      const [waiting] = await submit(relay, [
        { from: "app@origin.test", to: "later@dest.test", tag: "dash-later" },
      ]);
      await waitUntil(
        async () => {
          await open(page, relay, `/messages/${waiting}`);
          return /Waiting: /.test(await mainText(page));
        },
        "the deferral on the message page",
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      assert.match(await mainText(page), /4\.7\.1 try later/);
      assert.ok((await page.$$("xpath/.//button[starts-with(., 'Retry dest.test')]")).length);
      await b.shot(page, "07-message-deferred");
      await submitForm(page, "Retry dest.test now");
      assert.match(await mainText(page), /retries its queue now/);
      assert.match(page.url(), new RegExp(`/dashboard/messages/${waiting}\\?`));
      await waitUntil(
        async () => {
          await open(page, relay, "/queue");
          return (await page.$$("xpath/.//a[normalize-space()='Suspend']")).length > 0;
        },
        "the waiting site on the Queue page",
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      await Promise.all([
        page.waitForNavigation(),
        page.click("xpath/.//a[normalize-space()='Suspend']"),
      ]);
      assert.match(await mainText(page), /No mail goes to this site until it is resumed/);
      await b.shot(page, "08-queue-confirm");
      await submitForm(page, "Suspend");
      assert.match(await mainText(page), /is suspended/);
      assert.ok((await page.$$(".badge.suspended")).length > 0, "the site shows suspended");
      await b.shot(page, "08-queue");
      await submitForm(page, "Resume");
      assert.match(await mainText(page), /is resumed/);
      await Promise.all([
        page.waitForNavigation(),
        page.click("xpath/.//a[normalize-space()='Purge']"),
      ]);
      assert.match(await mainText(page), /marked bounced\. This cannot be undone/);
      await page.click("input[name=dsn]"); // no bounce notice to the (test) sender
      await submitForm(page, "Purge");
      assert.match(await mainText(page), /is purged \(1 recipients removed\)/);
      const purged = await call(relay, `/v1/messages/${waiting}`);
      assert.equal(purged.json.recipients[0].status, "bounced", purged.text);
      assert.equal(await open(page, relay, "/webhooks"), 200);
      await b.shot(page, "09-webhooks");
      assert.equal(await open(page, relay, ""), 200);
      const overview = await mainText(page);
      assert.match(overview, /delivered\s*1/, overview.slice(0, 400));
      await b.shot(page, "10-overview");

      // Labelled forms; then a phone: every page fits the width (tables reflow into cards).
      const phonePages = ["", "/activity", `/messages/${id}`, "/queue", domainPage, "/credentials"];
      for (const path of [...phonePages, "/domains", "/webhooks", "/suppressions"]) {
        assert.equal(await open(page, relay, path), 200);
        const unlabelled = await page.evaluate(
          `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
            .filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label"))
            .map((e) => e.name)`,
        ) as string[];
        assert.deepEqual(unlabelled, [], `${path || "/"}: every form field has a label`);
      }
      await page.setViewport({ width: 390, height: 844 });
      for (const path of phonePages) {
        assert.equal(await open(page, relay, path), 200);
        const overflow = await page.evaluate(
          "document.documentElement.scrollWidth - window.innerWidth",
        ) as number;
        assert.ok(overflow <= 1, `${path || "/"} is ${overflow}px wider than a phone`);
        await b.shot(page, `11-phone-${path.split("/")[1] || "overview"}`);
      }

      // Without JavaScript, the pages still read.
      const plain = await b.newPage();
      await plain.setJavaScriptEnabled(false);
      await signIn(plain, relay, relay.adminToken);
      assert.equal(await open(plain, relay, `/activity?recipient=reader%40dest.test`), 200);
      assert.match(await mainText(plain), /test dash-first/);
    } finally {
      await hooks.close();
      await sink.close();
    }
  },
});

Deno.test({
  name:
    "a new credential's password is shown once with ready-to-paste SMTP settings, and not after a reload",
  ignore: missing !== null,
  async fn() {
    const sink = await startSink();
    await using relay = await startRelay({ env: relayEnv(sink) });
    await using b = await launchBrowser();
    try {
      const page = await b.newPage();
      await signIn(page, relay, relay.adminToken);
      assert.equal(await open(page, relay, "/credentials"), 200);
      await page.type("#f-name", "billing app");
      await page.type("#f-rate_limit", "100/min");
      await submitForm(page, "Create credential");
      const secret = await page.$eval(
        ".secret",
        (e) => (e as unknown as { innerText: string }).innerText,
      );
      const password = /pst_[a-z0-9]{16}_[A-Za-z0-9_-]{32}/.exec(secret)?.[0];
      assert.ok(password, secret);
      assert.match(secret, /relay\.test/, "the SMTP host");
      assert.match(secret, /Port \d+\s+STARTTLS/, "the submission port and its TLS mode");
      assert.match(secret, /Port \d+\s+TLS from the first byte/, "the implicit-TLS port");
      assert.match(secret, /cr_[a-z0-9]{16}/, "the username");
      await b.shot(page, "12-credential-created");

      // The password works: it is a live API key.
      const own = await call(relay, "/v1/credentials", { token: password });
      assert.equal(own.status, 200, own.text);

      await page.reload();
      const after = await page.content();
      assert.ok(!after.includes(password), "a reload does not show the password again");
      assert.match(await mainText(page), /shown once and is not shown again/);
      assert.equal(await open(page, relay, "/credentials"), 200);
      assert.ok(!(await page.content()).includes(password));
      assert.match(await mainText(page), /billing app/);
      await b.shot(page, "13-credentials");

      // Rotate (a second password, shown once), edit scopes, revoke.
      await Promise.all([page.waitForNavigation(), page.click("xpath/.//a[.='billing app']")]);
      await submitForm(page, "Rotate (issue a second password)");
      const second = /pst_[a-z0-9]{16}_[A-Za-z0-9_-]{32}/.exec(
        await page.$eval(".secret", (e) => (e as unknown as { innerText: string }).innerText),
      )?.[0];
      assert.ok(second && second !== password, "a new password");
      assert.equal((await call(relay, "/v1/credentials", { token: password })).status, 200);
      assert.equal((await call(relay, "/v1/credentials", { token: second })).status, 200);
      await page.$eval("#f-domains", (e) => ((e as unknown as { value: string }).value = ""));
      await page.type("#f-domains", "shop.example.test");
      await submitForm(page, "Save scopes");
      assert.match(await mainText(page), /Scopes saved/);
      const id = /cr_[a-z0-9]{16}/.exec(page.url())![0];
      const scoped = await call(relay, `/v1/credentials/${id}`);
      assert.deepEqual(scoped.json.domains, ["shop.example.test"]);
      assert.equal(scoped.json.rate_limit, "100/min", "untouched scopes stay");
      await page.click("input[name=confirm]");
      await submitForm(page, "Revoke credential");
      assert.match(await mainText(page), /Credential revoked/);
      assert.equal((await call(relay, "/v1/credentials", { token: second })).status, 401);
    } finally {
      await sink.close();
    }
  },
});

Deno.test({
  name: "a form posted from another site is refused by the CSRF check and changes nothing",
  ignore: missing !== null,
  async fn() {
    const sink = await startSink();
    await using relay = await startRelay({ env: relayEnv(sink) });
    // The attacker's page: another origin on loopback that auto-submits a form to the relay.
    const target = `${base(relay)}/dashboard/suppressions`;
    const evil = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
      new Response(
        `<!DOCTYPE html><form id=f method=post action="${target}">` +
          `<input name=address value="victim@dest.test"><input name=_csrf value="guess"></form>` +
          `<script>document.getElementById("f").submit()</script>`,
        { headers: { "content-type": "text/html" } },
      ));
    await using b = await launchBrowser();
    try {
      const page = await b.newPage();
      await signIn(page, relay, relay.adminToken);
      const refused = page.waitForResponse((r) => r.url() === target);
      await page.goto(`http://127.0.0.1:${evil.addr.port}/`);
      const res = await refused;
      assert.equal(res.status(), 403);
      await page.waitForSelector(".notice.error");
      assert.match(await mainText(page), /cross-site/);
      await b.shot(page, "14-csrf-refused");
      const listed = await call(relay, "/v1/suppressions/victim%40dest.test");
      assert.equal(listed.status, 404, "the address was not suppressed");
    } finally {
      await evil.shutdown();
      await sink.close();
    }
  },
});

Deno.test({
  name: "an account key sees only its account: another account's message page is not found",
  ignore: missing !== null,
  async fn() {
    const sink = await startSink();
    await using relay = await startRelay({ env: relayEnv(sink) });
    await using b = await launchBrowser();
    try {
      const [theirs] = await submit(relay, [
        { from: "ceo@origin.test", to: "board@dest.test", tag: "secret-plans" },
      ]);
      await sink.waitFor(1);
      const other = await newAccount(relay, "other tenant");
      const key = await newCredential(relay, { name: "tenant app" }, other);

      const page = await b.newPage();
      await signIn(page, relay, key.password);
      const nav = await page.$$eval("nav a", (els) => els.map((e) => e.textContent));
      assert.ok(!nav.includes("Queue") && !nav.includes("Webhooks"), `nav: ${nav}`);
      assert.equal(await open(page, relay, `/messages/${theirs}`), 404);
      assert.ok(!(await mainText(page)).includes("secret-plans"));
      await b.shot(page, "15-other-account-message");
      assert.equal(await open(page, relay, "/activity"), 200);
      assert.ok(!(await mainText(page)).includes("secret-plans"));
      assert.equal(await open(page, relay, "/queue"), 403, "the queue is the admin's");
      assert.equal(await open(page, relay, "/credentials"), 200);
      assert.match(await mainText(page), /tenant app/);
      await b.shot(page, "16-credentials-as-key");
    } finally {
      await sink.close();
    }
  },
});

Deno.test({
  name:
    "a domain's records copied from its page verify with Verify now, and a DKIM rotation lists the new key to publish",
  ignore: missing !== null,
  async fn() {
    const dns = await startDnsServer({ txt: {} });
    try {
      await using relay = await startRelay({ env: { POSTERN_DNS: `127.0.0.1:${dns.port}` } });
      await using b = await launchBrowser();
      const page = await b.newPage();
      await signIn(page, relay, relay.adminToken);
      assert.equal(await open(page, relay, "/domains"), 200);
      await page.type("#f-name", "mail.example.test");
      await submitForm(page, "Add domain");
      await submitForm(page, "Verify now");
      assert.match(await mainText(page), /Not verified yet/);

      // What an operator copies: each row's name and value, from the copy buttons.
      const rows = await page.evaluate(
        `Array.from(document.querySelectorAll("tbody tr")).map((tr) =>
          Array.from(tr.querySelectorAll("button[data-copy]")).map((b) => b.getAttribute("data-copy")))`,
      ) as string[][];
      const records = rows.filter((r) => r.length === 2).map(([name, value]) => ({
        name: name!,
        value: value!,
      }));
      assert.equal(records.length, 3, JSON.stringify(rows));
      publish(dns.zone, records);
      await submitForm(page, "Verify now");
      assert.match(await mainText(page), /mail\.example\.test is verified/);
      assert.ok((await page.$$(".badge.verified")).length >= 2, "the domain and its records");
      await b.shot(page, "17-domain-verified");

      await submitForm(page, "Rotate DKIM keys");
      assert.match(await mainText(page), /New DKIM keys made/);
      assert.equal((await page.$$("xpath/.//li[.//span[.='pending']]")).length, 1);
      await b.shot(page, "18-domain-rotating");
    } finally {
      await dns.close();
    }
  },
});
