/**
 * MAIL FROM and RCPT TO, parsed as smtp-server's `_parseAddressCommand` parses them (the
 * address in angle brackets, xtext parameters, lenient or strict address checks, an A-label
 * domain turned to Unicode), with our two changes folded in (smtp_server_patches.ts 4 and 8):
 * the path as the client wrote it is kept as `written`, and a source route is kept whole
 * (so our address checks refuse it) instead of stripped.
 *
 * Ported from smtp-server 3.21.6 lib/smtp-connection.js (MIT, Andris Reinman).
 *
 * @module
 */
import net from "node:net";
import punycode from "node:punycode";
import { normalizeIPv6 } from "smtp-server/lib/ipv6-normalize.js";

/** Control characters (C0, DEL, C1): never in a parameter, username or reply (smtp-server's). */
export const CONTROL_CHARS = /[\x00-\x1F\x7F-\x9F]/;
const ADDRESS_UNSAFE_CHARS = /[\x00-\x1F\x7F-\x9F\u200B\u2060\uFEFF]/;

export type AddressArgs = Record<string, string | true>;

export interface ParsedAddress {
  address: string;
  args: AddressArgs | false;
  /** A parameter given twice (the command is refused). */
  duplicate?: string;
  /** The path as the client wrote it, without the angle brackets. */
  written?: string;
}

export interface AddressParsing {
  lenient: boolean;
  refuseSourceRoutes: boolean;
}

function decodeXtext(value: string): string {
  return value.indexOf("+") < 0
    ? value
    : value.replace(/\+([0-9A-F]{2})/g, (_m, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** `name` is "MAIL FROM" or "RCPT TO"; false when the command does not parse. */
export function parseAddressCommand(
  name: "MAIL FROM" | "RCPT TO",
  text: string,
  how: AddressParsing,
): ParsedAddress | false {
  const colon = text.indexOf(":");
  const verb = (colon < 0 ? text : text.slice(0, colon)).trim().toUpperCase();
  if (verb !== name) return false;
  const parts = (colon < 0 ? "" : text.slice(colon + 1)).trim().split(/\s+/);
  let address = parts.shift() ?? "";
  let args: AddressArgs | false = false;
  let duplicate: string | false = false;
  let invalid = false;

  if (!/^<[^<>]*>$/.test(address)) {
    invalid = true;
  } else {
    // RFC 5321 §4.1.2 and appendix C: smtp-server accepts and ignores a source route.
    address = address.slice(1, -1).replace(/^@[^\s,:@]+(?:,@[^\s,:@]+)*:/, "");
  }

  for (const param of parts) {
    const part = param.split("=");
    const key = part.shift()!.toUpperCase();
    let value: string | true = part.join("=") || true;
    if (!key || key.trim() === "") continue;
    if (typeof value === "string") {
      value = decodeXtext(value);
      if (CONTROL_CHARS.test(value)) {
        invalid = true;
        continue;
      }
    }
    if (!args) args = {};
    if (key in args) duplicate = key;
    args[key] = value;
  }

  if (address && ADDRESS_UNSAFE_CHARS.test(address)) {
    invalid = true;
  } else if (name === "RCPT TO" && address.toLowerCase() === "postmaster") {
    // RFC 5321 §4.1.1.3: the domainless postmaster recipient must be accepted.
  } else if (address) {
    const addressParts = address.split("@");
    if (addressParts.length !== 2 || !addressParts[0] || !addressParts[1]) {
      invalid = true;
    } else {
      const localPart = addressParts[0];
      let domain = addressParts[1];
      if (how.lenient) {
        try {
          address = localPart + "@" + toUnicode(domain);
        } catch {
          address = localPart + "@" + domain;
        }
      } else if (localPart.length + 1 + domain.length > 253) {
        invalid = true;
      } else {
        if (localPart.startsWith(".") || localPart.endsWith(".") || localPart.includes("..")) {
          invalid = true;
        }
        const isIPLiteral = !invalid && domain.startsWith("[") && domain.endsWith("]");
        if (isIPLiteral) {
          const ipContent = domain.slice(1, -1);
          let isValidIP = false;
          if (ipContent.toUpperCase().startsWith("IPV6:")) {
            let ipv6Addr = ipContent.slice(5);
            if (net.isIPv6(ipv6Addr)) {
              isValidIP = true;
              try {
                ipv6Addr = normalizeIPv6(ipv6Addr);
                domain = "[IPv6:" + ipv6Addr + "]";
              } catch {
                // kept as written
              }
            }
          } else if (net.isIPv4(ipContent)) {
            isValidIP = true;
          }
          if (!isValidIP) invalid = true;
          if (!invalid) address = localPart + "@" + domain;
        } else {
          if (
            !invalid &&
            (domain.startsWith(".") || domain.endsWith(".") || domain.includes("..") ||
              domain.includes(".-") || domain.includes("-.") ||
              !/^[a-zA-Z0-9\u0080-\uFFFF.-]+$/.test(domain))
          ) {
            invalid = true;
          }
          if (!invalid) {
            try {
              address = localPart + "@" + toUnicode(domain);
            } catch {
              invalid = true;
            }
          }
        }
      }
    }
  }
  if (invalid) return false;

  const parsed: ParsedAddress = { address, args };
  if (duplicate) parsed.duplicate = duplicate;
  // Ours (patches 4 and 8): the first word after the colon, as the client wrote it.
  const path = /\S+/.exec(text.slice(colon + 1))?.[0] ?? "";
  const start = path.startsWith("<") ? 1 : 0;
  const end = path.length > start && path.endsWith(">") ? path.length - 1 : path.length;
  parsed.written = path.slice(start, end);
  if (how.refuseSourceRoutes && start === 1 && path.charCodeAt(1) === 64 /* @ */) {
    const route = /^<(@[^<>]*)>$/.exec(path);
    if (route) parsed.address = route[1]!;
  }
  return parsed;
}

/** punycode.js's toUnicode, skipped for a domain it would return unchanged (no A-label, no
 * ideographic full stop to normalize). */
function toUnicode(domain: string): string {
  return domain.includes("xn--") || /[\u3002\uFF0E\uFF61]/.test(domain)
    ? punycode.toUnicode(domain)
    : domain;
}
