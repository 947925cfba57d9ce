/**
 * AUTH abuse, end to end: failed AUTH is answered more slowly each time, per client address and
 * per username; past the limit the client is disconnected with 421 and the username refused
 * with 454 4.7.0 until the cool-down ends; other clients and users are unaffected; and an
 * unknown user is answered exactly like a wrong password, in reply and in timing.
 *
 * Different clients are different loopback source addresses (127.0.0.2, 127.0.0.3, ...).
 */
import assert from "node:assert/strict";
import { type Relay, startRelay } from "./support/relay_process.ts";
import { NodeSmtp } from "./support/node_smtp.ts";
import { newCredential } from "./support/tenants.ts";

const DELAY_MS = 300;

function relayEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    POSTERN_AUTH_FAILURE_LIMIT: "3",
    POSTERN_AUTH_LOCKOUT: "3s",
    POSTERN_AUTH_FAILURE_DELAY: `${DELAY_MS}ms`,
    ...extra,
  };
}

/** An SMTPS session from `localAddress`, after EHLO. */
async function smtps(relay: Relay, localAddress: string): Promise<NodeSmtp> {
  const { client, greeting } = await NodeSmtp.connect({
    port: relay.smtpsPort,
    localAddress,
    implicitTls: true,
  });
  assert.equal(greeting.code, 220, greeting.raw);
  assert.equal((await client.command("EHLO client.test")).code, 250);
  return client;
}

/** AUTH PLAIN, timed from the command to the reply. */
async function timedAuth(client: NodeSmtp, username: string, password: string) {
  const started = performance.now();
  const reply = await client.authPlain(username, password);
  return { reply, ms: performance.now() - started };
}

Deno.test("failed AUTH slows each reply, then locks the client out with 421 until the cool-down ends, and never touches another client", async () => {
  await using relay = await startRelay({ env: relayEnv() });
  const good = await newCredential(relay);
  const attacker = await smtps(relay, "127.0.0.2");
  // A different username each time: only the client's count can lock it.
  for (let n = 1; n <= 3; n++) {
    const { reply, ms } = await timedAuth(attacker, `cr_guess${n}`, "wrong");
    assert.equal(reply.raw, "535 5.7.8 Authentication credentials invalid");
    assert.ok(ms >= n * DELAY_MS - 20, `failure ${n} was answered after ${ms} ms`);
  }
  const locked = await attacker.authPlain("cr_guess4", "wrong");
  assert.match(locked.raw, /^421 4\.7\.0 .*too many failed authentication attempts/);
  await attacker.waitClosed();

  // Even with the right password, 127.0.0.2 is refused unheard during the cool-down.
  const again = await smtps(relay, "127.0.0.2");
  assert.match((await again.authPlain(good.username, good.password)).raw, /^421 4\.7\.0 /);
  await again.waitClosed();

  // 127.0.0.1 is another client: it logs in at once and sends.
  const other = await smtps(relay, "127.0.0.1");
  try {
    const { reply, ms } = await timedAuth(other, good.username, good.password);
    assert.equal(reply.code, 235, reply.raw);
    assert.ok(ms < 5 * DELAY_MS, `a good login from another client waited ${ms} ms`);
    assert.equal((await other.command("MAIL FROM:<app@origin.test>")).code, 250);
  } finally {
    await other.quit();
  }

  // After the cool-down the lock is gone.
  await new Promise((r) => setTimeout(r, 3_100));
  const later = await smtps(relay, "127.0.0.2");
  try {
    assert.equal((await later.authPlain(good.username, good.password)).code, 235);
  } finally {
    await later.quit();
  }
  assert.ok(relay.logs.some((l) => l.event === "smtp.auth_locked" && l.lock === "client"));
});

Deno.test("guesses for one username spread over many clients lock that username with 454 4.7.0, and other users still log in", async () => {
  await using relay = await startRelay({ env: relayEnv() });
  const victim = await newCredential(relay);
  const bystander = await newCredential(relay);
  for (const address of ["127.0.0.3", "127.0.0.4", "127.0.0.5"]) {
    const client = await smtps(relay, address);
    try {
      assert.equal((await client.authPlain(victim.username, "wrong")).code, 535);
    } finally {
      await client.quit();
    }
  }
  const client = await smtps(relay, "127.0.0.6");
  try {
    // Refused without checking: a right guess now would learn nothing either.
    const refused = await client.authPlain(victim.username, victim.password);
    assert.equal(refused.raw, "454 4.7.0 Too many failed authentication attempts, try again later");
    assert.equal((await client.authPlain(bystander.username, bystander.password)).code, 235);
  } finally {
    await client.quit();
  }
  await new Promise((r) => setTimeout(r, 3_100));
  const later = await smtps(relay, "127.0.0.7");
  try {
    assert.equal((await later.authPlain(victim.username, victim.password)).code, 235);
  } finally {
    await later.quit();
  }
});

Deno.test("an unknown user and a wrong password get the same reply after the same time", async () => {
  await using relay = await startRelay({
    env: relayEnv({ POSTERN_AUTH_FAILURE_DELAY: "600ms", POSTERN_AUTH_FAILURE_LIMIT: "0" }),
  });
  const known = await newCredential(relay);
  // A second secret: a wrong password is then checked against two hashes, like an unknown user.
  const rotated = await relay.api(`/v1/credentials/${known.id}/rotate`, { body: {} });
  assert.equal(rotated.status, 201, JSON.stringify(rotated.json));
  const samples: Record<"unknown" | "wrong", { raw: string; ms: number }[]> = {
    unknown: [],
    wrong: [],
  };
  // Each attempt from a fresh client address, so each is a first failure with the same delay.
  for (let i = 0; i < 6; i++) {
    for (const kind of ["unknown", "wrong"] as const) {
      const client = await smtps(relay, `127.0.1.${i * 2 + (kind === "wrong" ? 1 : 0) + 1}`);
      try {
        const username = kind === "unknown" ? `cr_${"0".repeat(12)}${1000 + i}` : known.username;
        const { reply, ms } = await timedAuth(client, username, `wrong-${i}`);
        samples[kind].push({ raw: reply.raw, ms });
      } finally {
        await client.quit();
      }
    }
  }
  const replies = new Set([...samples.unknown, ...samples.wrong].map((s) => s.raw));
  assert.deepEqual([...replies], ["535 5.7.8 Authentication credentials invalid"]);
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const unknown = median(samples.unknown.map((s) => s.ms));
  const wrong = median(samples.wrong.map((s) => s.ms));
  console.log(
    `AUTH failure, median reply time: unknown user ${unknown.toFixed(0)} ms, ` +
      `wrong password ${wrong.toFixed(0)} ms`,
  );
  // Both wait for the padded delay, measured from the start of the attempt; what is left is
  // scheduling noise, far below the delay itself.
  assert.ok(unknown >= 580 && wrong >= 580, `${unknown} / ${wrong}`);
  assert.ok(Math.abs(unknown - wrong) < 250, `unknown ${unknown} ms, wrong ${wrong} ms`);
});
