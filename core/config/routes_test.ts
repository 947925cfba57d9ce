import assert from "node:assert/strict";
import { parseRouteHost, parseRoutes } from "./routes.ts";

Deno.test("smtps:// and port 465 route hosts speak implicit TLS; a route may name its TLS level", () => {
  assert.deepEqual(parseRouteHost("smtps://relay.example", 25), {
    host: "relay.example",
    port: 465,
    implicitTls: true,
  });
  assert.deepEqual(parseRouteHost("relay.example:465", 25), {
    host: "relay.example",
    port: 465,
    implicitTls: true,
  });
  assert.deepEqual(parseRouteHost("relay.example:587", 25), { host: "relay.example", port: 587 });
  assert.deepEqual(parseRoutes("a.test=smtps://r.example:2465;tls=verify,b.test=10.0.0.1"), {
    "a.test": { hosts: [{ host: "r.example", port: 2465, implicitTls: true }], tls: "verify" },
    "b.test": { hosts: [{ host: "10.0.0.1", port: 25 }] },
  });
  assert.throws(() => parseRoutes("a.test=r.example;tls=strict"), /Unknown TLS level "strict"/);
});
