import assert from "node:assert/strict";
import {
  BUILTIN_PROVIDERS,
  DEFAULT_PROFILE,
  formatRate,
  hostMatches,
  profileFor,
  resolveShaping,
  ShapingSchema,
} from "./shaping.ts";

const parse = (input: unknown) => ShapingSchema.parse(input);

Deno.test("resolveShaping() gives the documented defaults when nothing is configured", () => {
  const s = resolveShaping(parse({}));
  assert.deepEqual(s.default, {
    name: "default",
    connectionLimit: 10,
    maxDeliveriesPerConnection: 100,
    maxMessageRate: null,
    connectTimeoutMs: 30_000,
    idleTimeoutMs: 5_000,
    requireTls: false,
    backoffCooldownMs: 300_000,
    backoffMessageRate: { count: 60, perMs: 60_000 },
    failedHostCooldownMs: 60_000,
  });
  assert.deepEqual(s.providers.map((p) => p.name), Object.keys(BUILTIN_PROVIDERS));
  assert.equal(DEFAULT_PROFILE.connection_limit, 10);
});

Deno.test("profileFor() matches each built-in provider by MX host suffix", () => {
  const s = resolveShaping(parse({}));
  const cases: Array<[hosts: string[], profile: string, requireTls: boolean]> = [
    [["aspmx.l.google.com", "alt1.aspmx.l.google.com"], "google", true],
    [["gmail-smtp-in.l.google.com."], "google", true],
    [["mx.googlemail.com"], "google", true],
    [["contoso-com.mail.protection.outlook.com"], "outlook", true],
    [["outlook-com.olc.protection.outlook.com"], "outlook", true],
    [["mta5.am0.yahoodns.net"], "yahoo", true],
    [["mx01.mail.icloud.com"], "icloud", true],
    [["mx.example.org"], "default", false],
    // A suffix must match on a label boundary.
    [["mx.notgoogle.com"], "default", false],
    [["route:127.0.0.1:25"], "default", false],
  ];
  for (const [hosts, name, requireTls] of cases) {
    const p = profileFor(s, hosts);
    assert.equal(p.name, name, hosts.join(","));
    assert.equal(p.requireTls, requireTls, hosts.join(","));
  }
});

Deno.test("resolveShaping() layers built-ins, the file's default, explicit globals, then providers", () => {
  const s = resolveShaping(
    parse({
      default: { connection_limit: 20, max_message_rate: "100/min", idle_timeout: "30s" },
      provider: {
        google: { connection_limit: 3 },
        corp: { match: [".Corp.Example"], max_deliveries_per_connection: 7, require_tls: true },
      },
    }),
    { connectionLimit: 4, connectTimeout: 2_000 },
  );
  // Globals set explicitly (env) beat the file's default; unset ones leave it.
  assert.equal(s.default.connectionLimit, 4);
  assert.equal(s.default.connectTimeoutMs, 2_000);
  assert.equal(s.default.idleTimeoutMs, 30_000);
  assert.deepEqual(s.default.maxMessageRate, { count: 100, perMs: 60_000 });
  const google = profileFor(s, ["aspmx.l.google.com"]);
  assert.equal(google.connectionLimit, 3, "the user's override of a built-in provider");
  assert.equal(google.maxDeliveriesPerConnection, 50, "the built-in field the user left");
  assert.equal(google.requireTls, true);
  assert.deepEqual(google.maxMessageRate, { count: 100, perMs: 60_000 }, "inherits the default");
  const corp = profileFor(s, ["mx1.corp.example"]);
  assert.equal(corp.name, "corp");
  assert.equal(corp.maxDeliveriesPerConnection, 7);
  assert.equal(corp.connectionLimit, 4);
});

Deno.test("profileFor() prefers the longest matching suffix over file order", () => {
  const s = resolveShaping(parse({
    provider: {
      broad: { match: ["example.net"], connection_limit: 9 },
      narrow: { match: ["eu.mx.example.net"], connection_limit: 2 },
    },
  }));
  assert.equal(profileFor(s, ["a.eu.mx.example.net"]).name, "narrow");
  assert.equal(profileFor(s, ["a.us.mx.example.net"]).name, "broad");
});

Deno.test("a route's site opens more connections unless a connection limit was set, and a provider's match still wins", () => {
  const plain = resolveShaping(parse({}));
  assert.equal(profileFor(plain, ["smarthost.example.net"], true).name, "route");
  assert.equal(profileFor(plain, ["smarthost.example.net"], true).connectionLimit, 50);
  assert.equal(profileFor(plain, ["mx.example.net"]).connectionLimit, 10);
  assert.equal(profileFor(plain, ["smtp.google.com"], true).name, "google");

  const global = resolveShaping(parse({}), { connectionLimit: 7 });
  assert.equal(profileFor(global, ["smarthost.example.net"], true).connectionLimit, 7);
  const fileDefault = resolveShaping(parse({ default: { connection_limit: 3 } }));
  assert.equal(profileFor(fileDefault, ["smarthost.example.net"], true).connectionLimit, 3);
  const own = resolveShaping(parse({ route: { connection_limit: 80, idle_timeout: "1s" } }));
  const route = profileFor(own, ["smarthost.example.net"], true);
  assert.deepEqual([route.connectionLimit, route.idleTimeoutMs], [80, 1000]);
});

Deno.test("ShapingSchema rejects unknown fields, bad rates and providers without match", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ default: { conection_limit: 3 } }, /conection_limit/],
    [{ default: { max_message_rate: "fast" } }, /Cannot parse rate "fast"/],
    [{ default: { connect_timeout: "soon" } }, /Cannot parse duration "soon"/],
    [{ provider: { acme: { connection_limit: 2 } } }, /provider "acme" needs "match"/],
    [
      { provider: { "bad name": { match: ["x.test"] } } },
      /provider.*(letters, digits|[Ii]nvalid key)/,
    ],
  ];
  for (const [input, message] of cases) {
    const r = ShapingSchema.safeParse(input);
    assert.equal(r.success, false, JSON.stringify(input));
    const said = r.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
    assert.match(said, message, JSON.stringify(input));
  }
});

Deno.test("hostMatches() and formatRate() read and write the config's notation", () => {
  assert.equal(hostMatches("ASPMX.L.GOOGLE.COM.", "google.com"), true);
  assert.equal(hostMatches("google.com", "google.com"), true);
  assert.equal(hostMatches("evilgoogle.com", "google.com"), false);
  assert.equal(formatRate(null), null);
  assert.equal(formatRate({ count: 100, perMs: 60_000 }), "100/min");
  assert.equal(formatRate({ count: 3, perMs: 300_000 }), "3/5m");
});
