/**
 * The KV Connect stand-in, driven by Deno's own remote KV client (`Deno.openKv(url)` with
 * DENO_KV_ACCESS_TOKEN), as Postern drives hosted Deno KV or denokv.
 */
import assert from "node:assert/strict";
import { codecs, DENOKV_LIMITS, KvConnectStandin } from "./kv_connect_standin.ts";

async function withStandin(
  fn: (standin: KvConnectStandin, kv: Deno.Kv) => Promise<void>,
  token = "standin-test-token",
) {
  const dir = await Deno.makeTempDir({ prefix: "postern_standin_" });
  const standin = await KvConnectStandin.start({ path: `${dir}/remote.kv`, token: "secret-1" });
  const before = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  Deno.env.set("DENO_KV_ACCESS_TOKEN", token === "standin-test-token" ? "secret-1" : token);
  let kv: Deno.Kv | null = null;
  try {
    kv = await Deno.openKv(standin.url);
    await fn(standin, kv);
  } finally {
    kv?.close();
    if (before === undefined) Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    else Deno.env.set("DENO_KV_ACCESS_TOKEN", before);
    await standin.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a remote KV client sets, gets, lists and sums through the stand-in", async () => {
  await withStandin(async (_standin, kv) => {
    const r = await kv.set(["a", 1], { hello: "world", n: [1, 2, 3] });
    assert(r.ok);
    const got = await kv.get(["a", 1]);
    assert.deepEqual(got.value, { hello: "world", n: [1, 2, 3] });
    assert.deepEqual(got.versionstamp, r.versionstamp);
    await kv.set(["a", 2], new Uint8Array([0, 1, 255]));
    await kv.set(["b", 1], "other prefix");
    const listed = await Array.fromAsync(kv.list({ prefix: ["a"] }));
    assert.deepEqual(listed.map((e) => e.key), [["a", 1], ["a", 2]]);
    assert.deepEqual(listed[1]!.value, new Uint8Array([0, 1, 255]));
    const reversed = await Array.fromAsync(kv.list({ prefix: ["a"] }, { reverse: true, limit: 1 }));
    assert.deepEqual(reversed.map((e) => e.key), [["a", 2]]);
    await kv.atomic().sum(["count"], 2n).sum(["count"], 3n).commit();
    assert.deepEqual((await kv.get<Deno.KvU64>(["count"])).value?.value, 5n);
    await kv.delete(["a", 1]);
    assert.deepEqual((await kv.get(["a", 1])).value, null);
  });
});

Deno.test("an atomic check on the stand-in fails when the key changed", async () => {
  await withStandin(async (_standin, kv) => {
    const first = await kv.set(["k"], 1);
    assert(first.ok);
    const stale = { key: ["k"], versionstamp: first.versionstamp };
    assert((await kv.atomic().check(stale).set(["k"], 2).commit()).ok);
    assert.deepEqual((await kv.atomic().check(stale).set(["k"], 3).commit()).ok, false);
    assert.deepEqual(
      (await kv.atomic().check({ key: ["new"], versionstamp: null }).set(["new"], 1).commit()).ok,
      true,
    );
    assert.deepEqual((await kv.get(["k"])).value, 2);
  });
});

Deno.test("a remote client is refused 11 checks and over 819 200 bytes in one atomic write, as denokv refuses them", async () => {
  await withStandin(async (standin, kv) => {
    // Deno's client allows 100 checks locally; denokv allows 10.
    const ten = kv.atomic();
    for (let i = 0; i < DENOKV_LIMITS.maxChecks; i++) {
      ten.check({ key: ["c", i], versionstamp: null });
    }
    assert((await ten.set(["ten"], 1).commit()).ok);
    const eleven = kv.atomic();
    for (let i = 0; i <= DENOKV_LIMITS.maxChecks; i++) {
      eleven.check({ key: ["c", i], versionstamp: null });
    }
    await assert.rejects(() => eleven.set(["eleven"], 1).commit(), /Too many checks/);
    assert.deepEqual((await kv.get(["eleven"])).value, null);

    // 13 values of 64 000 bytes with their keys: over 819 200 bytes on the server's count.
    const big = kv.atomic();
    for (let i = 0; i < 13; i++) big.set(["big", i], new Uint8Array(64_000));
    await assert.rejects(() => big.commit());
    assert.deepEqual((await kv.get(["big", 0])).value, null);
    const fits = kv.atomic();
    for (let i = 0; i < 12; i++) fits.set(["big", i], new Uint8Array(64_000));
    assert((await fits.commit()).ok);

    assert(standin.refusals.includes("Too many checks."), standin.refusals.join(", "));
  });
});

Deno.test("the stand-in refuses queues", async () => {
  await withStandin(async (_standin, kv) => {
    await assert.rejects(() => kv.enqueue({ job: 1 }));
  });
});

Deno.test("the stand-in keeps its data across a stop and a restart on the same port", async () => {
  await withStandin(async (standin, kv) => {
    await kv.set(["kept"], "before the stop");
    const port = standin.port;
    await standin.stop();
    // A write while it is down waits (the client retries) and lands once it is back.
    const pending = kv.set(["during"], "while stopped");
    await new Promise((r) => setTimeout(r, 300));
    await standin.resume();
    assert.deepEqual(standin.port, port);
    assert((await pending).ok);
    assert.deepEqual((await kv.get(["kept"])).value, "before the stop");
    assert.deepEqual((await kv.get(["during"])).value, "while stopped");
  });
});

Deno.test("the stand-in refuses a client with the wrong access token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_standin_" });
  const standin = await KvConnectStandin.start({ path: `${dir}/remote.kv`, token: "right" });
  try {
    const res = await fetch(standin.url, {
      method: "POST",
      headers: { authorization: "Bearer wrong", "content-type": "application/json" },
      body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
    });
    assert.deepEqual(res.status, 401);
    await res.body?.cancel();
    const ok = await fetch(standin.url, {
      method: "POST",
      headers: { authorization: "Bearer right", "content-type": "application/json" },
      body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
    });
    assert.deepEqual((await ok.json()).version, 3);
  } finally {
    await standin.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the stand-in's file opens as a local Deno KV store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_standin_" });
  const path = `${dir}/remote.kv`;
  await withStandinAt(path, async (kv) => {
    await kv.set(["x", "y"], { z: 1 });
  });
  const local = await Deno.openKv(path);
  try {
    assert.deepEqual((await local.get(["x", "y"])).value, { z: 1 });
  } finally {
    local.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function withStandinAt(path: string, fn: (kv: Deno.Kv) => Promise<void>) {
  const standin = await KvConnectStandin.start({ path, token: "t" });
  Deno.env.set("DENO_KV_ACCESS_TOKEN", "t");
  const kv = await Deno.openKv(standin.url);
  try {
    await fn(kv);
  } finally {
    kv.close();
    Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    await standin.stop();
  }
}

Deno.test("the stand-in answers 400 where denokv's limits.rs is exceeded (requests Deno's client would not send)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_standin_" });
  const standin = await KvConnectStandin.start({ path: `${dir}/remote.kv`, token: "t" });
  const call = async (method: string, body: Uint8Array) => {
    const res = await fetch(`${standin.url}/v2/${method}`, {
      method: "POST",
      headers: {
        authorization: "Bearer t",
        "x-denokv-version": "3",
        "x-denokv-database-id": "00000000-0000-0000-0000-000000000000",
        "content-type": "application/x-protobuf",
      },
      body: body as Uint8Array<ArrayBuffer>,
    });
    return { status: res.status, text: await res.text() };
  };
  const key = (n: number, len = 8) => {
    const k = new Uint8Array(len);
    k[0] = 0x02;
    new DataView(k.buffer).setUint32(1, n);
    return k;
  };
  const set = (k: Uint8Array, size = 1) => ({
    key: k,
    value: { data: new Uint8Array(size), encoding: "VE_BYTES" as const },
    mutationType: "M_SET",
    expireAtMs: "0",
  });
  const write = (w: { checks?: unknown[]; mutations?: unknown[] }) =>
    call(
      "atomic_write",
      codecs.atomicWrite.encodeBinary({ checks: [], mutations: [], enqueues: [], ...w } as never),
    );
  const read = (ranges: { start: Uint8Array; end: Uint8Array; limit: number }[]) =>
    call(
      "snapshot_read",
      codecs.snapshotRead.encodeBinary({ ranges: ranges.map((r) => ({ ...r, reverse: false })) }),
    );
  try {
    const l = DENOKV_LIMITS;
    const many = (n: number) => Array.from({ length: n }, (_, i) => set(key(i)));
    assert.equal((await write({ mutations: many(l.maxMutations) })).status, 200);
    assert.deepEqual(await write({ mutations: many(l.maxMutations + 1) }), {
      status: 400,
      text: "Too many mutations.",
    });
    assert.equal((await write({ mutations: [set(key(1), l.maxValueBytes)] })).status, 200);
    assert.deepEqual(await write({ mutations: [set(key(1), l.maxValueBytes + 1)] }), {
      status: 400,
      text: "Value too long.",
    });
    assert.equal((await write({ mutations: [set(key(1, l.maxWriteKeyBytes))] })).status, 200);
    assert.deepEqual(await write({ mutations: [set(key(1, l.maxWriteKeyBytes + 1))] }), {
      status: 400,
      text: "Key too long.",
    });
    // 819 200 bytes of keys and values pass; one byte more does not.
    const exact = Array.from({ length: 12 }, (_, i) => set(key(i), 65_536));
    const used = 12 * (8 + 65_536);
    exact.push(set(key(99), l.maxTotalMutationBytes - used - 8));
    assert.equal((await write({ mutations: exact })).status, 200);
    exact[12] = set(key(99), l.maxTotalMutationBytes - used - 8 + 1);
    assert.deepEqual(await write({ mutations: exact }), {
      status: 400,
      text: "Atomic write too large.",
    });
    const range = (limit: number) => ({ start: key(0), end: key(9999), limit });
    assert.equal((await read(Array.from({ length: 10 }, () => range(100)))).status, 200);
    assert.deepEqual(await read(Array.from({ length: 11 }, () => range(1))), {
      status: 400,
      text: "Too many read ranges requested.",
    });
    assert.deepEqual(await read([range(600), range(401)]), {
      status: 400,
      text: "Read range too large.",
    });
  } finally {
    await standin.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a remote client's watch sees the current value, then each change", async () => {
  await withStandin(async (_standin, kv) => {
    await kv.set(["w"], 1);
    const stream = kv.watch([["w"], ["absent"]]);
    const reader = stream.getReader();
    try {
      const first = await reader.read();
      assert.deepEqual(first.value?.map((e) => e.value), [1, null]);
      await kv.set(["w"], 2);
      for (;;) {
        const next = await reader.read();
        if (next.value?.[0]?.value === 2) break;
      }
    } finally {
      await reader.cancel();
    }
  });
});
