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

type Doc = {
  paths: Record<
    string,
    Record<string, {
      responses: Record<string, { description: string; content?: Record<string, unknown> }>;
      requestBody?: { content: Record<string, unknown> };
      parameters?: { name: string; in: string }[];
    }>
  >;
  components: { schemas: Record<string, { properties: Record<string, unknown> }> };
};

Deno.test("every operation documents its success body and its errors in the shared error shape", () => {
  const doc = openApiDocument() as Doc;
  assert.ok(doc.components.schemas.Error?.properties.error, "the Error schema");
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method} ${path}`;
      const codes = Object.keys(op.responses);
      assert.ok(codes.some((c) => c.startsWith("2")), `${where}: a success response`);
      assert.ok(codes.includes("401"), `${where}: 401`);
      for (const [code, response] of Object.entries(op.responses)) {
        assert.ok(response.description, `${where} ${code}: a description`);
        assert.ok(response.content, `${where} ${code}: a body`);
        if (!code.startsWith("2")) {
          assert.deepEqual(
            response.content["application/json"],
            { schema: { $ref: "#/components/schemas/Error" } },
            `${where} ${code}: the error shape`,
          );
        }
      }
    }
  }
});

Deno.test("the 409s are documented where the API answers them", () => {
  const doc = openApiDocument() as Doc;
  const conflicts = [
    ["post", "/v1/messages"],
    ["post", "/v1/accounts"],
    ["patch", "/v1/credentials/{id}"],
    ["post", "/v1/credentials/{id}/rotate"],
    ["delete", "/v1/credentials/{id}/secrets/{secretId}"],
    ["post", "/v1/domains"],
    ["post", "/v1/domains/{id}/rotate-dkim"],
  ];
  for (const [method, path] of conflicts) {
    assert.ok(doc.paths[path!]?.[method!]?.responses["409"], `409 for ${method} ${path}`);
  }
});

Deno.test("the send operation documents the raw message/rfc822 upload and its envelope query", () => {
  const send = (openApiDocument() as Doc).paths["/v1/messages"]!.post!;
  assert.ok(send.requestBody?.content["application/json"], "JSON body");
  assert.ok(send.requestBody?.content["message/rfc822"], "raw MIME body");
  const query = (send.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name);
  for (const name of ["from", "to", "tag"]) assert.ok(query.includes(name), `?${name}=`);
  assert.ok(send.responses["202"]?.content?.["application/json"], "202 {id}");
});
