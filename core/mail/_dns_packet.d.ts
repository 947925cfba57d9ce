// Types for the subset of the untyped `dns-packet` npm module that the DNS client
// (core/mail/dns_client.ts) and the test responder (tests/support/dns_server.ts) use;
// without them every packet would be `any` under our strict compiler flags.

import type { Buffer } from "node:buffer";

export interface Question {
  type: string;
  name: string;
  class?: string;
}

export interface Answer {
  type: string;
  name: string;
  ttl?: number;
  class?: string;
  flush?: boolean;
  data?: unknown;
  udpPayloadSize?: number;
  flags?: number;
  options?: unknown[];
}

export interface Packet {
  id?: number;
  type?: "query" | "response";
  flags?: number;
  rcode?: string;
  /** Decoded packets only: the TC bit (RFC 1035 §4.1.1), the answer did not fit. */
  flag_tc?: boolean;
  /** Decoded packets only: the AD bit (RFC 4035 §3.2.3), the resolver validated the answer. */
  flag_ad?: boolean;
  questions?: Question[];
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
}

export function encode(packet: Packet): Buffer;
export function decode(buf: Uint8Array): Packet;
/** TCP framing (RFC 1035 §4.2.2): the message behind its two-byte length. */
export function streamEncode(packet: Packet): Buffer;
export function streamDecode(buf: Uint8Array): Packet;

export const AUTHORITATIVE_ANSWER: number;
export const RECURSION_DESIRED: number;
export const TRUNCATED_RESPONSE: number;
export const AUTHENTIC_DATA: number;

declare const dnsPacket: {
  encode: typeof encode;
  decode: typeof decode;
  streamEncode: typeof streamEncode;
  streamDecode: typeof streamDecode;
  AUTHORITATIVE_ANSWER: number;
  RECURSION_DESIRED: number;
  TRUNCATED_RESPONSE: number;
  AUTHENTIC_DATA: number;
};
export default dnsPacket;
