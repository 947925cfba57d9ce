import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
// @ts-types="../../core/mail/_dns_packet.d.ts"
import dnsPacket from "dns-packet";
import type { Packet } from "../../core/mail/_dns_packet.d.ts";
import { type DnsServer, startDnsServer, type Zone } from "./dns_server.ts";

function example_zone(): Zone {
  return {
    mx: {
      "example.test": [
        { exchange: "mx1.example.test", priority: 10 },
        { exchange: "mx2.example.test", priority: 20 },
      ],
    },
    a: { "mx1.example.test": ["127.0.0.1", "127.0.0.2"] },
    aaaa: { "mx1.example.test": ["::1"] },
    txt: {
      "example.test": ["v=spf1 ip4:127.0.0.1 -all", ["part one ", "part two"]],
      "long.example.test": ["k".repeat(600)],
    },
  };
}

/** Deno returns MX records as null-prototype objects, which strict deepEqual tells apart. */
async function resolve_mx(
  name: string,
  options: Deno.ResolveDnsOptions,
): Promise<{ preference: number; exchange: string }[]> {
  const records = await Deno.resolveDns(name, "MX", options);
  return records.map((record) => ({ ...record }));
}

function options_for(server: DnsServer): Deno.ResolveDnsOptions {
  return { nameServer: { ipAddr: server.address, port: server.port } };
}

/** Sends one raw query, to see the RCODE that Deno.resolveDns hides. */
async function raw_query(server: DnsServer, name: string, type: string): Promise<Packet> {
  const socket = dgram.createSocket("udp4");
  try {
    const reply = new Promise<Buffer>((resolve) => socket.once("message", resolve));
    const query = dnsPacket.encode({
      id: 4242,
      type: "query",
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
    });
    socket.send(query, server.port, server.address);
    return dnsPacket.decode(await reply);
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

Deno.test("startDnsServer() answers MX, A, AAAA and TXT queries from the zone", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const options = options_for(server);
    assert.deepEqual(await resolve_mx("example.test", options), [
      { preference: 10, exchange: "mx1.example.test." },
      { preference: 20, exchange: "mx2.example.test." },
    ]);
    assert.deepEqual(await Deno.resolveDns("mx1.example.test", "A", options), [
      "127.0.0.1",
      "127.0.0.2",
    ]);
    assert.deepEqual(await Deno.resolveDns("mx1.example.test", "AAAA", options), ["::1"]);
    assert.deepEqual(await Deno.resolveDns("example.test", "TXT", options), [
      ["v=spf1 ip4:127.0.0.1 -all"],
      ["part one ", "part two"],
    ]);
    assert.deepEqual(server.queries.map((query) => query.type), ["MX", "A", "AAAA", "TXT"]);
  } finally {
    await server.close();
  }
});

Deno.test("startDnsServer() matches names case-insensitively", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const answers = await Deno.resolveDns("EXAMPLE.Test", "MX", options_for(server));
    assert.equal(answers.length, 2);
    assert.deepEqual(server.queries, [{ name: "example.test", type: "MX" }]);
  } finally {
    await server.close();
  }
});

Deno.test("startDnsServer() splits TXT strings longer than 255 octets", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const [record] = await Deno.resolveDns("long.example.test", "TXT", options_for(server));
    assert.deepEqual(record?.map((part) => part.length), [255, 255, 90]);
    assert.equal(record?.join(""), "k".repeat(600));
  } finally {
    await server.close();
  }
});

Deno.test("startDnsServer() makes Deno.resolveDns throw NotFound for NXDOMAIN and NODATA", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const options = options_for(server);
    // Deno 2.9 throws Deno.errors.NotFound for both, with the message
    // `proto error: no records found for Query { name: Name("nope.test."), query_type: MX, … }`:
    // it cannot tell NXDOMAIN from NODATA, so the raw test below checks the RCODEs.
    await assert.rejects(Deno.resolveDns("nope.test", "MX", options), Deno.errors.NotFound);
    await assert.rejects(Deno.resolveDns("example.test", "A", options), Deno.errors.NotFound);
  } finally {
    await server.close();
  }
});

Deno.test("startDnsServer() answers NXDOMAIN for unknown names and NODATA for missing types", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const unknown = await raw_query(server, "nope.test", "MX");
    assert.equal(unknown.rcode, "NXDOMAIN");
    assert.equal(unknown.id, 4242);
    assert.deepEqual(unknown.answers, []);

    const missingType = await raw_query(server, "example.test", "AAAA");
    assert.equal(missingType.rcode, "NOERROR");
    assert.deepEqual(missingType.answers, []);
  } finally {
    await server.close();
  }
});

Deno.test("startDnsServer() reads the zone live, so tests can change records between queries", async () => {
  const server = await startDnsServer(example_zone());
  try {
    const options = options_for(server);
    server.zone.a = { ...server.zone.a, "new.example.test": ["127.0.0.9"] };
    assert.deepEqual(await Deno.resolveDns("new.example.test", "A", options), ["127.0.0.9"]);

    delete server.zone.mx?.["example.test"];
    await assert.rejects(Deno.resolveDns("example.test", "MX", options), Deno.errors.NotFound);

    server.zone = { mx: { "other.test": [{ exchange: "mx.other.test", priority: 5 }] } };
    assert.deepEqual(await resolve_mx("other.test", options), [
      { preference: 5, exchange: "mx.other.test." },
    ]);
  } finally {
    await server.close();
  }
});
