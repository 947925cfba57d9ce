import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { openApiDocument } from "./openapi.ts";
import { Committer } from "../core/store/committer.ts";
import { BodyCache } from "../core/store/body_cache.ts";
import { QueueSignal } from "../core/queue_signal.ts";
import { SendLimits } from "../core/send_limits.ts";
import { silentLogger } from "../core/log.ts";
import { dnsResolver } from "../core/mail/mx.ts";
import { SecretBox } from "../core/auth/secret_box.ts";

Deno.test("the OpenAPI document lists every route the app serves, and nothing it does not", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const app = createApp({
      kv,
      adminTokenHash: "x",
      defaultAccount: "default",
      spfInclude: "relay.test",
      txtLookup: () => Promise.resolve([]),
      intake: {
        kv,
        committer: new Committer(kv),
        hostname: "relay.test",
        maxMessageSize: 1024,
        bodyCache: new BodyCache(),
        signal: new QueueSignal(),
        log: silentLogger,
      },
      limits: new SendLimits(kv),
      // Never called: building the app registers routes and asks no resolver anything.
      resolver: dnsResolver({ ipAddr: "127.0.0.1", port: 9 }),
      webhookAllowed: () => false,
      secretBox: await SecretBox.fromMaterial(new Uint8Array(32)),
      trusted: () => false,
      eventSettleMs: 0,
    });
    const served = new Set(
      app.routes
        .filter((r) => r.method !== "ALL" && /^\/(v1|metrics)/.test(r.path))
        .map((r) =>
          `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}").replace(/\/$/, "")}`
        ),
    );
    assert.ok(served.size >= 35, `${served.size} routes`);
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m} ${path}`)
      ),
    );
    assert.deepEqual([...served].filter((r) => !documented.has(r)), [], "served, not documented");
    assert.deepEqual([...documented].filter((r) => !served.has(r)), [], "documented, not served");
  } finally {
    kv.close();
  }
});
