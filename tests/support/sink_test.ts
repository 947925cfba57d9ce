import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import type SMTPTransport from "nodemailer/lib/smtp-transport";
import { type Sink, startSink } from "./sink.ts";

function transport_to(sink: Sink, options: SMTPTransport.Options = {}) {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: false,
    name: "client.test",
    tls: { rejectUnauthorized: false },
    ...options,
  });
}

function send(sink: Sink, to: string, options: SMTPTransport.Options = {}) {
  return transport_to(sink, options).sendMail({
    from: "sender@origin.test",
    to,
    subject: "Hello",
    text: "Body line\n",
  });
}

/** The fields nodemailer sets on a rejected send. */
interface SendError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
}

function is_send_error(code: number): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof Error);
    assert.equal((error as SendError).responseCode, code, (error as SendError).response ?? "");
    return true;
  };
}

Deno.test("startSink() accepts and records a message over STARTTLS by default", async () => {
  const sink = await startSink();
  try {
    await send(sink, "Alice@Dest.test");
    const [message] = await sink.waitFor(1);
    assert.ok(message);
    assert.equal(message.from, "sender@origin.test");
    // As received: nodemailer lowercases the domain, the sink keeps the local part's case.
    assert.deepEqual(message.to, ["Alice@dest.test"]);
    assert.equal(message.secure, true);
    assert.equal(message.heloName, "client.test");
    assert.equal(message.remoteAddress, "127.0.0.1");
    assert.equal(message.localPort, sink.port);
    assert.match(message.headers, /^Subject: Hello$/m);
    assert.doesNotMatch(message.headers, /Body line/);
    assert.match(message.text, /\r\n\r\nBody line\r\n$/);
    assert.equal(message.raw.length, new TextEncoder().encode(message.text).length);
    assert.equal(sink.attempts.get("alice@dest.test"), 1);
    assert.equal(sink.connections, 1);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() replies 550 at RCPT for a recipient scripted so", async () => {
  const sink = await startSink({
    behaviors: { "nobody@dest.test": { code: 550, message: "5.1.1 No such user" } },
  });
  try {
    await assert.rejects(send(sink, "nobody@dest.test"), (error: unknown) => {
      assert.equal((error as SendError).responseCode, 550);
      assert.match(String((error as SendError).response), /^550 5\.1\.1 No such user/);
      return true;
    });
    assert.equal(sink.attempts.get("nobody@dest.test"), 1);
    assert.equal(sink.messages.length, 0);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() plays a sequence: 451 on the first attempt, 250 on the next", async () => {
  const sink = await startSink({
    behaviors: {
      "later@dest.test": { sequence: [{ code: 451, message: "4.7.1 Try again" }, "accept"] },
    },
  });
  try {
    await assert.rejects(send(sink, "later@dest.test"), is_send_error(451));
    assert.equal(sink.messages.length, 0);
    await send(sink, "later@dest.test");
    await send(sink, "later@dest.test");
    assert.equal(sink.messages.length, 2);
    assert.equal(sink.attempts.get("later@dest.test"), 3);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() replies after DATA for an atData recipient", async () => {
  const sink = await startSink({ defaultBehavior: "accept" });
  try {
    sink.setBehavior("Spam@Dest.test", { atData: { code: 554, message: "5.7.1 Rejected" } });
    await assert.rejects(send(sink, "spam@dest.test"), is_send_error(554));
    assert.equal(sink.attempts.get("spam@dest.test"), 1);
    assert.equal(sink.messages.length, 0);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() setBehavior() restarts a sequence from its first entry", async () => {
  const sink = await startSink();
  try {
    await send(sink, "bob@dest.test");
    sink.setBehavior("bob@dest.test", { sequence: [{ code: 452, message: "Full" }, "accept"] });
    await assert.rejects(send(sink, "bob@dest.test"), is_send_error(452));
    await send(sink, "bob@dest.test");
    assert.equal(sink.messages.length, 2);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() with tls 'none' neither offers nor uses STARTTLS", async () => {
  const sink = await startSink({ tls: "none" });
  try {
    await assert.rejects(send(sink, "a@dest.test", { requireTLS: true }));
    await send(sink, "a@dest.test");
    const [message] = await sink.waitFor(1);
    assert.equal(message?.secure, false);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() refuses sessions with a scripted greeting", async () => {
  const sink = await startSink({ greeting: { code: 421, message: "4.3.2 Too busy" } });
  try {
    await assert.rejects(send(sink, "a@dest.test"), (error: unknown) => {
      assert.match(String((error as SendError).response), /^421 4\.3\.2 Too busy/);
      return true;
    });
    assert.equal(sink.connections, 1);
    assert.equal(sink.attempts.size, 0);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() never answers RCPT for a hanging recipient, and still closes", async () => {
  const sink = await startSink({ behaviors: { "slow@dest.test": "hang" } });
  try {
    await assert.rejects(send(sink, "slow@dest.test", { socketTimeout: 300 }), (error: unknown) => {
      assert.equal((error as SendError).code, "ETIMEDOUT");
      return true;
    });
    assert.equal(sink.attempts.get("slow@dest.test"), 1);
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() counts TCP sessions, so tests can see connection reuse", async () => {
  const sink = await startSink();
  const pool = nodemailer.createTransport({
    pool: true,
    maxConnections: 1,
    host: sink.host,
    port: sink.port,
    tls: { rejectUnauthorized: false },
  });
  try {
    const mail = { from: "sender@origin.test", to: "x@dest.test", text: "hi" };
    await pool.sendMail(mail);
    await pool.sendMail(mail);
    await pool.sendMail(mail);
    assert.equal(sink.messages.length, 3);
    assert.equal(sink.connections, 1);
  } finally {
    pool.close();
    await sink.close();
  }
});

Deno.test("startSink() waitFor() rejects with the sink's state after the timeout", async () => {
  const sink = await startSink();
  try {
    await send(sink, "one@dest.test");
    assert.equal((await sink.waitFor(1)).length, 1);
    await assert.rejects(
      sink.waitFor(2, { timeoutMs: 50 }),
      /Cannot wait for 2 message\(s\) on sink port \d+ as only 1 arrived within 50 ms/,
    );
  } finally {
    await sink.close();
  }
});

Deno.test("startSink() refuses an empty sequence up front", async () => {
  await assert.rejects(
    startSink({ defaultBehavior: { sequence: [] } }),
    /sequence is empty/,
  );
});
