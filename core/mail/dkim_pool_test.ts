import assert from "node:assert/strict";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { DkimSigner, type DkimSigningKey, dkimTxtValue, generateDkimKey } from "./dkim.ts";
import { DkimKeyCache, nodeKey } from "./dkim_keys.ts";
import { DkimPool, DkimUnavailable } from "./dkim_pool.ts";
import { SIGNING_SAMPLES } from "../policy/dkim_placement.ts";

const enc = new TextEncoder();
const faultyWorker = new URL("../../tests/support/faulty_dkim_worker.ts", import.meta.url);

const rsa = generateDkimKey("rsa");
const ed = generateDkimKey("ed25519");
const KEYS: DkimSigningKey[] = [
  {
    domain: "example.test",
    selector: "s1",
    algorithm: "rsa",
    privateKey: rsa.privateKey,
    version: "1",
  },
  {
    domain: "example.test",
    selector: "s1e",
    algorithm: "ed25519",
    privateKey: ed.privateKey,
    version: "1",
  },
];
const ZONE: Record<string, string> = {
  "s1._domainkey.example.test": dkimTxtValue("rsa", rsa.publicKey),
  "s1e._domainkey.example.test": dkimTxtValue("ed25519", ed.publicKey),
};

function resolver(name: string, type: string) {
  const value = ZONE[name.toLowerCase()];
  if (type !== "TXT" || value === undefined) {
    return Promise.reject(
      Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" }),
    );
  }
  return Promise.resolve([[value]]);
}

/** Signs one message through `pool` and returns it whole, signatures in front. */
async function signedMessage(pool: DkimPool, subject: string, keys = KEYS): Promise<string> {
  const head = `From: App <app@example.test>\r\nTo: user@dest.test\r\nSubject: ${subject}\r\n`;
  const body = "Hello  \r\n\r\n";
  const signer = new DkimSigner(keys, pool);
  signer.update(enc.encode(body));
  return await signer.sign(enc.encode(head), new Date()) + head + "\r\n" + body;
}

async function verdicts(message: string): Promise<string[]> {
  const result = await dkimVerify(message, { resolver });
  return result.results.map((r: { status: { result: string } }) => r.status.result);
}

Deno.test("signatures made in the worker pool verify (RSA and Ed25519), spread over its workers", async () => {
  const pool = new DkimPool({ workers: 2 });
  try {
    const messages = await Promise.all(
      Array.from({ length: 8 }, (_, i) => signedMessage(pool, `m${i}`)),
    );
    for (const m of messages) assert.deepEqual(await verdicts(m), ["pass", "pass"]);
    // Eight at once: the second worker was started to take its share.
    assert.equal(pool.running, 2);
  } finally {
    pool.close();
  }
});

Deno.test("a key is parsed once per domain and version; a rotation drops (and frees) the old key", () => {
  const parsed: string[] = [];
  const freed: string[] = [];
  const cache = new DkimKeyCache((key) => {
    parsed.push(key.selector);
    return { ...nodeKey(key), free: () => freed.push(key.selector) };
  });
  const [first] = cache.prepared(KEYS);
  const [again] = cache.prepared(KEYS);
  assert.equal(again, first, "the second message reuses the parsed key");
  assert.deepEqual(parsed, ["s1", "s1e"]);
  assert.equal(cache.size, 2);
  // Rotation: the domain now signs with a new selector only; its old keys go.
  const fresh = generateDkimKey("rsa");
  const rotated: DkimSigningKey[] = [{
    domain: "example.test",
    selector: "s2",
    algorithm: "rsa",
    privateKey: fresh.privateKey,
    version: "2",
  }];
  cache.prepared(rotated);
  cache.prepared(rotated);
  assert.deepEqual(parsed, ["s1", "s1e", "s2"]);
  assert.deepEqual(freed, ["s1", "s1e"]);
  assert.equal(cache.size, 1);
  // The same selector under a new version (the domain removed and added again) is parsed anew.
  cache.prepared([{ ...rotated[0]!, privateKey: rsa.privateKey, version: "3" }]);
  assert.deepEqual(parsed, ["s1", "s1e", "s2", "s2"]);
  assert.deepEqual(freed, ["s1", "s1e", "s2"]);
  assert.equal(cache.size, 1);
});

Deno.test("the pool refuses work past its queue bound instead of queueing without limit", async () => {
  const pool = new DkimPool({ workers: 1, maxQueued: 2 });
  try {
    const pending = [signedMessage(pool, "a"), signedMessage(pool, "b")];
    await assert.rejects(signedMessage(pool, "c"), DkimUnavailable);
    for (const m of await Promise.all(pending)) {
      assert.deepEqual(await verdicts(m), ["pass", "pass"]);
    }
    // Room again once those are answered.
    assert.deepEqual(await verdicts(await signedMessage(pool, "d")), ["pass", "pass"]);
  } finally {
    pool.close();
  }
});

Deno.test("a worker that crashes is replaced and its request signed by the new one", async () => {
  const pool = new DkimPool({ workers: 1, workerUrl: faultyWorker });
  try {
    const message = await signedMessage(pool, "crash-once");
    assert.deepEqual(await verdicts(message), ["pass", "pass"]);
  } finally {
    pool.close();
  }
});

Deno.test("a worker that stops answering is replaced and the request signed by the new one", async () => {
  const pool = new DkimPool({ workers: 1, workerUrl: faultyWorker, answerWithinMs: 10_000 });
  try {
    const message = await signedMessage(pool, "hang-once");
    assert.deepEqual(await verdicts(message), ["pass", "pass"]);
  } finally {
    pool.close();
  }
});

Deno.test("a request that keeps crashing workers is refused (to be deferred); the pool still signs others", async () => {
  const pool = new DkimPool({ workers: 2, workerUrl: faultyWorker });
  try {
    const [bad, good] = await Promise.allSettled([
      signedMessage(pool, "crash-always"),
      signedMessage(pool, "fine"),
    ]);
    assert.equal(bad.status, "rejected");
    assert.ok((bad as PromiseRejectedResult).reason instanceof DkimUnavailable);
    assert.equal(good.status, "fulfilled");
    assert.deepEqual(await verdicts((good as PromiseFulfilledResult<string>).value), [
      "pass",
      "pass",
    ]);
    assert.deepEqual(await verdicts(await signedMessage(pool, "after")), ["pass", "pass"]);
  } finally {
    pool.close();
  }
});

Deno.test("a key that does not parse is refused, not signed with nothing", async () => {
  const pool = new DkimPool({ workers: 1 });
  try {
    const broken = [{
      ...KEYS[0]!,
      privateKey: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }];
    await assert.rejects(signedMessage(pool, "broken", broken), DkimUnavailable);
  } finally {
    pool.close();
  }
});

Deno.test("closing the pool ends its workers and refuses what is outstanding and what comes after", async () => {
  const pool = new DkimPool({ workers: 2 });
  await signedMessage(pool, "warm");
  const outstanding = signedMessage(pool, "late");
  pool.close();
  assert.equal(pool.running, 0);
  await assert.rejects(outstanding, DkimUnavailable);
  await assert.rejects(signedMessage(pool, "closed"), DkimUnavailable);
});

Deno.test("with no workers the pool signs RSA and Ed25519 on the calling thread, and both verify", async () => {
  const pool = new DkimPool({ workers: 0 });
  try {
    const messages = await Promise.all(
      Array.from({ length: 4 }, (_, i) => signedMessage(pool, `inline ${i}`)),
    );
    for (const m of messages) assert.deepEqual(await verdicts(m), ["pass", "pass"]);
    assert.equal(pool.running, 0, "no worker was started");
  } finally {
    pool.close();
  }
});

Deno.test("RSA is signed in place while a signature costs no more than allowed, then in the workers for good", async () => {
  const rsaOnly = KEYS.filter((k) => k.algorithm === "rsa");
  // Any real signature costs more than a nanosecond: after the samples, the workers sign.
  const moving = new DkimPool({ workers: 1, inPlaceUpToMs: 1e-6 });
  // No RSA signature costs a second: this one never moves.
  const staying = new DkimPool({ workers: 1, inPlaceUpToMs: 1000 });
  try {
    for (let i = 0; i < SIGNING_SAMPLES; i++) {
      assert.equal(moving.running, 0, `signature ${i} was made in place`);
      await signedMessage(moving, `in place ${i}`, rsaOnly);
      await signedMessage(staying, `stays ${i}`, rsaOnly);
    }
    assert.equal(moving.signingInPlace, false);
    const message = await signedMessage(moving, "in a worker", rsaOnly);
    assert.equal(moving.running, 1, "the next signature started a worker");
    assert.deepEqual(await verdicts(message), ["pass"]);
    await signedMessage(staying, "still in place", rsaOnly);
    assert.equal(staying.signingInPlace, true);
    assert.equal(staying.running, 0, "no worker was started");
  } finally {
    moving.close();
    staying.close();
  }
});
