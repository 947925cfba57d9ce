// Types for the subset of the untyped `dns-packet` npm module that dns_server.ts uses;
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
  questions?: Question[];
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
}

export function encode(packet: Packet): Buffer;
export function decode(buf: Uint8Array): Packet;

export const AUTHORITATIVE_ANSWER: number;
export const RECURSION_DESIRED: number;

declare const dnsPacket: {
  encode: typeof encode;
  decode: typeof decode;
  AUTHORITATIVE_ANSWER: number;
  RECURSION_DESIRED: number;
};
export default dnsPacket;
