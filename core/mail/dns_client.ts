/**
 * A stub DNS client (RFC 1035) that asks one recursive name server over UDP, and over TCP when
 * the answer comes back truncated, and reports the response code as it came.
 *
 * Instead of Deno.resolveDns, whose errors do not tell SERVFAIL from NXDOMAIN, so that the queue
 * can follow RFC 2308: NXDOMAIN and NODATA are answers about the name, SERVFAIL, REFUSED, a
 * timeout or a packet we cannot read are failures to get an answer, and only the first may bounce.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import net from "node:net";
// @ts-types="./_dns_packet.d.ts"
import dnsPacket from "dns-packet";
import type { Answer, Packet } from "./_dns_packet.d.ts";

export interface NameServer {
  ipAddr: string;
  port: number;
}

/** What the name server said about one question. */
export type DnsResponse =
  | {
    rcode: "NOERROR";
    answers: Answer[];
    /** The AD bit: the resolver validated the answer with DNSSEC (RFC 4035 §3.2.3). */
    authenticated?: boolean;
  }
  | { rcode: "NXDOMAIN" }
  /** No usable answer: SERVFAIL, REFUSED, a timeout, a truncated or malformed response. */
  | { rcode: "FAILED"; reason: string };

export interface QueryOptions {
  /** Per transport (UDP, then TCP if truncated). @default 5000 */
  timeoutMs?: number;
  /**
   * Ask for DNSSEC validation (AD and DO bits, RFC 6840 §5.7): a validating resolver then
   * says in `authenticated` whether it validated the answer. Only DANE believes that.
   */
  dnssec?: boolean;
}

const DEFAULT_TIMEOUT_MS = 5_000;
/** The DO bit of the EDNS OPT record's flags (RFC 3225). */
const DNSSEC_OK = 0x8000;

/** Asks `server` one question; never throws, a failure is a `FAILED` response. */
export async function dnsQuery(
  server: NameServer,
  name: string,
  type: string,
  options: QueryOptions = {},
): Promise<DnsResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = Math.floor(Math.random() * 65_536);
  const query: Packet = {
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED | (options.dnssec ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: [{ type, name, class: "IN" }],
    // EDNS (RFC 6891): large MX sets fit in one UDP answer; DO (RFC 3225) asks for DNSSEC.
    additionals: [{
      type: "OPT",
      name: ".",
      udpPayloadSize: 4096,
      flags: options.dnssec ? DNSSEC_OK : 0,
      options: [],
    }],
  };
  let packet: Packet;
  try {
    packet = await overUdp(server, dnsPacket.encode(query), id, timeoutMs);
    if (packet.flag_tc) packet = await overTcp(server, dnsPacket.streamEncode(query), timeoutMs);
  } catch (err) {
    return { rcode: "FAILED", reason: `${type} ${name}: ${(err as Error).message}` };
  }
  if (packet.flag_tc) return { rcode: "FAILED", reason: `${type} ${name}: truncated answer` };
  const rcode = packet.rcode ?? "NOERROR";
  if (rcode === "NXDOMAIN") return { rcode };
  if (rcode !== "NOERROR") {
    return { rcode: "FAILED", reason: `${type} ${name}: the name server answered ${rcode}` };
  }
  return { rcode, answers: packet.answers ?? [], authenticated: packet.flag_ad === true };
}

function overUdp(
  server: NameServer,
  message: Buffer,
  id: number,
  timeoutMs: number,
): Promise<Packet> {
  const socket = dgram.createSocket(server.ipAddr.includes(":") ? "udp6" : "udp4");
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<Packet>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on("error", (err) => reject(err));
    socket.on("message", (data, peer) => {
      // Only the server asked, answering this query (RFC 5452 §9.1), counts; the rest is noise.
      if (peer.address !== server.ipAddr || peer.port !== server.port) return;
      let packet: Packet;
      try {
        packet = dnsPacket.decode(data);
      } catch {
        return reject(new Error("malformed answer"));
      }
      if (packet.id !== id) return;
      resolve(packet);
    });
    socket.send(message, server.port, server.ipAddr, (err) => err && reject(err));
  }).finally(() => {
    clearTimeout(timer);
    try {
      socket.close();
    } catch {
      // already closed
    }
  });
}

function overTcp(server: NameServer, message: Buffer, timeoutMs: number): Promise<Packet> {
  return new Promise<Packet>((resolve, reject) => {
    const socket = net.connect({ host: server.ipAddr, port: server.port });
    let buffered = Buffer.alloc(0);
    const done = (err: Error | null, packet?: Packet) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(packet!);
    };
    const timer = setTimeout(
      () => done(new Error(`no TCP answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("error", (err) => done(err));
    socket.on("connect", () => socket.write(message));
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      try {
        done(null, dnsPacket.streamDecode(buffered));
      } catch {
        done(new Error("malformed TCP answer"));
      }
    });
    socket.on("end", () => done(new Error("the name server closed the TCP connection")));
  });
}

/** The first name server in /etc/resolv.conf, the system's choice when POSTERN_DNS is unset. */
export function systemNameServer(): NameServer {
  try {
    const conf = Deno.readTextFileSync("/etc/resolv.conf");
    const m = /^\s*nameserver\s+([0-9A-Fa-f:.]+)/m.exec(conf);
    if (m) return { ipAddr: m[1]!, port: 53 };
  } catch {
    // no resolv.conf: a local resolver is the usual guess
  }
  return { ipAddr: "127.0.0.1", port: 53 };
}
