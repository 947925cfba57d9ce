import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { openApiDocument } from "./openapi.ts";
import { appDeps } from "../tests/support/app_deps.ts";

Deno.test("the OpenAPI document lists every route the app serves, and nothing it does not", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // Building the app registers routes and asks no resolver anything.
    const app = createApp(await appDeps(kv));
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
