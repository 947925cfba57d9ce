/**
 * TLSA lookups for DANE (RFC 7672 §2.2): asked of the resolver trusted to validate DNSSEC
 * (POSTERN_DNSSEC_RESOLVER) with the AD bit set in the query (RFC 6840 §5.7); an answer counts
 * only when the resolver sets AD in its reply, i.e. it validated the records. Any other answer
 * (unsigned, NXDOMAIN, a failure) means no usable TLSA, so delivery goes on as without DANE.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import type { TlsaRecord } from "../policy/dane.ts";

export interface NameServer {
  ipAddr: string;
  port: number;
}

interface DecodedAnswer {
  type: string;
  data?: { usage: number; selector: number; matchingType: number; certificate: Uint8Array };
}

interface Decoded {
  id?: number;
  rcode?: string;
  flag_ad?: boolean;
  answers?: DecodedAnswer[];
}

/** TLSA records of `name` if the resolver validated them; null otherwise. */
export function dnssecTlsaLookup(
  server: NameServer,
  timeoutMs = 5_000,
): (name: string) => Promise<TlsaRecord[] | null> {
  return async (name) => {
    const packet = await ask(server, name, timeoutMs);
    if ((packet.rcode ?? "NOERROR") !== "NOERROR" || packet.flag_ad !== true) return null;
    const records = (packet.answers ?? []).filter((a) => a.type === "TLSA" && a.data).map((a) => ({
      usage: a.data!.usage,
      selector: a.data!.selector,
      matchingType: a.data!.matchingType,
      data: new Uint8Array(a.data!.certificate),
    }));
    return records.length > 0 ? records : null;
  };
}

function ask(server: NameServer, name: string, timeoutMs: number): Promise<Decoded> {
  const id = Math.floor(Math.random() * 65_536);
  const query: Buffer = dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type: "TLSA", name, class: "IN" }],
    // EDNS with DO (RFC 3225): a validating resolver then reports what it validated.
    additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096, flags: 0x8000, options: [] }],
  });
  const socket = dgram.createSocket(server.ipAddr.includes(":") ? "udp6" : "udp4");
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<Decoded>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`TLSA ${name}: no answer`)), timeoutMs);
    socket.on("error", reject);
    socket.on("message", (data: Buffer, peer: { address: string; port: number }) => {
      if (peer.address !== server.ipAddr || peer.port !== server.port) return;
      try {
        const packet = dnsPacket.decode(data) as Decoded;
        if (packet.id === id) resolve(packet);
      } catch {
        reject(new Error(`TLSA ${name}: malformed answer`));
      }
    });
    socket.send(query, server.port, server.ipAddr, (err: Error | null) => err && reject(err));
  }).finally(() => {
    clearTimeout(timer);
    try {
      socket.close();
    } catch {
      // already closed
    }
  });
}
