/**
 * Intake with DKIM signing that fails for real: the pool's worker crashes on a message (the
 * faulty worker in tests/support/faulty_dkim_worker.ts), on a real KV file. The message is
 * refused with a temporary reply and nothing of it is queued (the client keeps it and retries);
 * it is never queued unsigned. The next message is signed as usual.
 */
import assert from "node:assert/strict";
import { accept, type IntakeDeps, type Submission } from "../core/intake.ts";
import { Committer } from "../core/store/committer.ts";
import { BodyCache } from "../core/store/body_cache.ts";
import { QueueSignal } from "../core/queue_signal.ts";
import { createLogger } from "../core/log.ts";
import { keys } from "../core/store/keys.ts";
import type { MessageRecord } from "../core/model.ts";
import { type DkimSigningKey, generateDkimKey } from "../core/mail/dkim.ts";
import { DkimPool } from "../core/mail/dkim_pool.ts";
import { intakeRefused } from "../smtp/replies.ts";
import { intakeError } from "../http/errors.ts";

const faultyWorker = new URL("./support/faulty_dkim_worker.ts", import.meta.url);

function submission(subject: string): Submission {
  return {
    account: "acct",
    credentialId: null,
    mailFrom: "app@example.test",
    recipients: ["user@dest.test"],
    clientAddress: "127.0.0.1",
    heloName: "client.test",
    protocol: "ESMTP",
    via: "smtp",
    body: (async function* () {
      yield new TextEncoder().encode(
        `From: app@example.test\r\nTo: user@dest.test\r\nSubject: ${subject}\r\n\r\nHello.\r\n`,
      );
    })(),
  };
}

Deno.test("a message whose signing keeps failing is deferred (451 4.3.0 / 503) with nothing queued; the next is signed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern-dkim-faults-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite`);
  const pool = new DkimPool({ workers: 1, workerUrl: faultyWorker });
  const lines: Record<string, unknown>[] = [];
  const signal = new QueueSignal();
  const queued: string[] = [];
  signal.subscribe((q) => queued.push(q.msg.id));
  const key: DkimSigningKey = {
    domain: "example.test",
    selector: "s1",
    algorithm: "rsa",
    privateKey: generateDkimKey("rsa").privateKey,
    version: "1",
  };
  const deps: IntakeDeps = {
    kv,
    committer: new Committer(kv),
    hostname: "relay.test",
    maxMessageSize: 1_000_000,
    bodyCache: new BodyCache(),
    signal,
    log: createLogger({ write: (line) => lines.push(JSON.parse(line)) }),
    dkimKeyFor: () => Promise.resolve([key]),
    dkimSignatures: pool,
  };
  try {
    const failed = await accept(deps, submission("crash-always"));
    assert.deepEqual(failed, { ok: false, reason: "signing_unavailable" });
    assert.ok(!failed.ok);
    const reply = intakeRefused(failed);
    assert.equal(`${reply.responseCode} ${reply.message}`.slice(0, 9), "451 4.3.0");
    assert.equal(intakeError(failed, 1000).status, 503);
    // Nothing of it is left in the store, and nothing was handed to delivery.
    const left = [];
    for await (const e of kv.list({ prefix: [] })) left.push(e.key);
    assert.deepEqual(left, []);
    assert.deepEqual(queued, []);
    assert.ok(lines.some((l) => l.event === "dkim.sign_failed" && l.domain === "example.test"));
    assert.ok(!JSON.stringify(lines).includes("PRIVATE KEY"), "no key material in the log");

    // The worker was replaced: the next message is signed and queued.
    const ok = await accept(deps, submission("fine"));
    assert.ok(ok.ok, JSON.stringify(ok));
    const record = (await kv.get<MessageRecord>(keys.message(ok.id))).value;
    assert.match(record?.prefix ?? "", /^DKIM-Signature: v=1; a=rsa-sha256;/);
    assert.deepEqual(queued, [ok.id]);
  } finally {
    pool.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
