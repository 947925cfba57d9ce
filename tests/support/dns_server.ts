/**
 * An authoritative DNS responder on UDP loopback, answering from a zone table.
 *
 * Tests never touch real DNS: the relay is pointed at this server instead, and the
 * zone object stays live, so a test can change a record between two deliveries.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import dgram from "node:dgram";
// @ts-types="../../core/mail/_dns_packet.d.ts"
import dnsPacket from "dns-packet";
import type { Answer, Packet, Question } from "../../core/mail/_dns_packet.d.ts";

/** Records by owner name; names are lowercase, without the trailing dot. */
export interface Zone {
  mx?: Record<string, { exchange: string; priority: number }[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /**
   * One entry per TXT record: a string, or the record's character-strings in order.
   * Widened from `string[][] | string[]` so one name may mix both forms.
   */
  txt?: Record<string, (string | string[])[]>;
  /** TLSA records (RFC 6698) by owner name (`_25._tcp.mx.example.test`); data in hex. */
  tlsa?: Record<string, { usage: number; selector: number; matchingType: number; data: string }[]>;
  /**
   * Names whose answers carry the AD bit, as a validating resolver sets it for DNSSEC-secure
   * data (RFC 4035 §3.2.3); `true`: every answer.
   */
  authenticated?: true | string[];
  /**
   * Faults scripted per name ("mx.example.test") or per name and type ("mx.example.test AAAA"),
   * ahead of any record: answer SERVFAIL, REFUSED or NXDOMAIN, set the TC bit with no answer
   * (and refuse TCP, as no TCP listener runs), send bytes that are no DNS message, or drop the
   * query so the client times out.
   */
  faults?: Record<string, DnsFault>;
}

/** How the responder misbehaves for a name (see {@linkcode Zone.faults}). */
export type DnsFault = "servfail" | "refused" | "nxdomain" | "truncated" | "malformed" | "drop";

/** One question the server was asked, in arrival order. */
export interface DnsQuery {
  name: string;
  type: string;
}

/** A running {@linkcode startDnsServer} instance. */
export interface DnsServer {
  port: number;
  address: string;
  /** Read on every query, so tests may mutate or replace it between queries. */
  zone: Zone;
  /** Every question received, so tests can assert what the relay looked up. */
  queries: DnsQuery[];
  close(): Promise<void>;
}

// RFC 1035 §4.1.1 RCODE values, carried in the low four bits of the header flags.
const RCODE_NOERROR = 0;
const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;
// RFC 4035 §3.2.3: the AD bit of the header flags.
const AUTHENTIC_DATA = 1 << 5;
const RCODE_SERVFAIL = 2;
const RCODE_REFUSED = 5;

// RFC 1035 §3.3: a character-string holds at most 255 octets; a DKIM key is longer.
const CHARACTER_STRING_LIMIT = 255;

const TTL_SECONDS = 60;

/**
 * Starts the responder on 127.0.0.1 on a random free UDP port.
 *
 * Unknown names get NXDOMAIN; a known name without records of the asked type gets
 * NOERROR with an empty answer (RFC 2308 NODATA), as a real authoritative server would.
 */
export async function startDnsServer(zone: Zone): Promise<DnsServer> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });

  let closed: Promise<void> | undefined;
  const server: DnsServer = {
    port: socket.address().port,
    address: "127.0.0.1",
    zone,
    queries: [],
    close() {
      closed ??= new Promise<void>((resolve) => socket.close(() => resolve()));
      return closed;
    },
  };

  socket.on("message", (message, peer) => {
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      // Not a DNS message; a real server would drop it too.
      return;
    }
    for (const question of query.questions ?? []) {
      server.queries.push({ name: normalize_name(question.name), type: question.type });
    }
    const fault = fault_for(server.zone, query);
    if (fault === "drop") return;
    if (fault === "malformed") {
      socket.send(Buffer.from([0, 1, 2]), peer.port, peer.address);
      return;
    }
    const reply = dnsPacket.encode(answer_query(server.zone, query));
    socket.send(reply, peer.port, peer.address);
  });

  return server;
}

/** Builds the response packet for `query` from the current state of `zone`. */
export function answer_query(zone: Zone, query: Packet): Packet {
  const questions = query.questions ?? [];
  const recursionDesired = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  const response: Packet = {
    id: query.id ?? 0,
    type: "response",
    flags: dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | RCODE_NOERROR,
    questions,
    answers: [],
  };
  const question = questions[0];
  if (question === undefined || questions.length > 1) {
    // RFC 9619: a query carries exactly one question.
    response.flags = dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | RCODE_FORMERR;
    return response;
  }
  const fault = fault_for(zone, query);
  const rcode = fault === "servfail"
    ? RCODE_SERVFAIL
    : fault === "refused"
    ? RCODE_REFUSED
    : fault === "nxdomain"
    ? RCODE_NXDOMAIN
    : null;
  if (rcode !== null) {
    response.flags = dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | rcode;
    return response;
  }
  if (fault === "truncated") {
    response.flags = dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired |
      dnsPacket.TRUNCATED_RESPONSE;
    return response;
  }
  if (!is_known_name(zone, normalize_name(question.name))) {
    response.flags = dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | RCODE_NXDOMAIN;
    return response;
  }
  response.answers = records_for(zone, question);
  const secure = zone.authenticated === true ||
    (zone.authenticated?.includes(normalize_name(question.name)) ?? false);
  if (secure) response.flags = (response.flags ?? 0) | AUTHENTIC_DATA;
  // Echo EDNS (RFC 6891) when the client used it, so it accepts answers above 512 bytes.
  if (query.additionals?.some((record) => record.type === "OPT")) {
    response.additionals = [
      { type: "OPT", name: ".", udpPayloadSize: 4096, flags: 0, options: [] },
    ];
  }
  return response;
}

/** The fault scripted for the query's question, by name and type first, then by name. */
function fault_for(zone: Zone, query: Packet): DnsFault | undefined {
  const question = query.questions?.[0];
  if (question === undefined || zone.faults === undefined) return undefined;
  const name = normalize_name(question.name);
  const faults = zone.faults;
  const byType = `${name} ${question.type}`;
  if (Object.hasOwn(faults, byType)) return faults[byType];
  return Object.hasOwn(faults, name) ? faults[name] : undefined;
}

function normalize_name(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

function is_known_name(zone: Zone, name: string): boolean {
  return [zone.mx, zone.a, zone.aaaa, zone.txt, zone.tlsa].some((table) =>
    table !== undefined && Object.hasOwn(table, name)
  );
}

function lookup<T>(table: Record<string, T[]> | undefined, name: string): T[] {
  if (table === undefined || !Object.hasOwn(table, name)) return [];
  return table[name] ?? [];
}

function records_for(zone: Zone, question: Question): Answer[] {
  const name = normalize_name(question.name);
  // Answer with the name as asked: resolvers match it against the question, case included.
  const owner = question.name;
  switch (question.type) {
    case "MX":
      return lookup(zone.mx, name).map((mx) => ({
        type: "MX",
        name: owner,
        ttl: TTL_SECONDS,
        data: { preference: mx.priority, exchange: mx.exchange },
      }));
    case "A":
      return lookup(zone.a, name).map((ip) => ({
        type: "A",
        name: owner,
        ttl: TTL_SECONDS,
        data: ip,
      }));
    case "AAAA":
      return lookup(zone.aaaa, name).map((ip) => ({
        type: "AAAA",
        name: owner,
        ttl: TTL_SECONDS,
        data: ip,
      }));
    case "TXT":
      return lookup(zone.txt, name).map((record) => ({
        type: "TXT",
        name: owner,
        ttl: TTL_SECONDS,
        data: (typeof record === "string" ? [record] : record).flatMap(split_character_strings),
      }));
    case "TLSA":
      return lookup(zone.tlsa, name).map((r) => ({
        type: "TLSA",
        name: owner,
        ttl: TTL_SECONDS,
        data: {
          usage: r.usage,
          selector: r.selector,
          matchingType: r.matchingType,
          certificate: Buffer.from(r.data, "hex"),
        },
      }));
    default:
      return [];
  }
}

/** Splits one string into ≤255-octet character-strings; resolvers join them back. */
function split_character_strings(text: string): Buffer[] {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length === 0) return [bytes];
  const chunks: Buffer[] = [];
  for (let start = 0; start < bytes.length; start += CHARACTER_STRING_LIMIT) {
    chunks.push(bytes.subarray(start, start + CHARACTER_STRING_LIMIT));
  }
  return chunks;
}
