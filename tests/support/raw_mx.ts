/**
 * A receiving "MX" written against raw sockets, for tests that must see the exact bytes the
 * relay puts on the wire (line endings, dot-stuffing) or must misbehave in ways smtp-server
 * never would: answer STARTTLS with extra plaintext in the same packet, then upgrade.
 *
 * It speaks just enough SMTP for one client: EHLO/HELO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP,
 * QUIT. node:tls wraps the accepted node:net socket for the server side of STARTTLS (Deno has
 * no server-side startTls).
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { loopbackCertificate } from "./tls_certificate.ts";

export interface RawMxOptions {
  /**
   * The bytes written, in one write, as the reply to STARTTLS before the handshake.
   * @default "220 2.0.0 Ready to start TLS\r\n"
   */
  starttlsReply?: string;
  /** Offer STARTTLS in the EHLO reply. @default true */
  starttls?: boolean;
}

/** One transaction the MX accepted. */
export interface RawTransaction {
  /** The MAIL FROM and RCPT TO lines as received. */
  mailFrom: string;
  rcptTo: string[];
  /** Everything between the 354 and the end of data, the final CRLF.CRLF included, as sent. */
  wire: Uint8Array;
  /** Whether the session was under TLS when the data came. */
  tls: boolean;
}

export interface RawMx {
  port: number;
  /** Every command line received, in order, per connection; "<TLS>" marks the handshake. */
  sessions: string[][];
  transactions: RawTransaction[];
  /** Resolves once `count` transactions have been accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<RawTransaction[]>;
  close(): Promise<void>;
}

const END = Buffer.from("\r\n.\r\n");

export async function startRawMx(options: RawMxOptions = {}): Promise<RawMx> {
  const { key, cert } = await loopbackCertificate();
  const context = tls.createSecureContext({ key, cert });
  const sockets = new Set<net.Socket>();
  const waiters = new Set<() => void>();
  const mx: RawMx = {
    port: 0,
    sessions: [],
    transactions: [],
    waitFor(count, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (mx.transactions.length < count) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(mx.transactions);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `Cannot wait for ${count} transaction(s) on the raw MX as only ` +
                `${mx.transactions.length} came within ${timeoutMs} ms: ` +
                JSON.stringify(mx.sessions),
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };

  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.once("close", () => sockets.delete(raw));
    raw.on("error", () => {});
    const log: string[] = [];
    mx.sessions.push(log);
    let socket: net.Socket = raw;
    let secure = false;
    let buffer = Buffer.alloc(0);
    let inData = false;
    let mailFrom = "";
    let rcptTo: string[] = [];
    const write = (text: string) => socket.write(text);

    const onBytes = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          // The data starts right after the 354; an empty message is ".\r\n" at once.
          const probe = Buffer.concat([Buffer.from("\r\n"), buffer]);
          const at = probe.indexOf(END);
          if (at < 0) return;
          const wire = buffer.subarray(0, at + 3); // up to and including ".\r\n"
          buffer = buffer.subarray(at + 3);
          inData = false;
          mx.transactions.push({ mailFrom, rcptTo, wire: Uint8Array.from(wire), tls: secure });
          write("250 2.0.0 Ok: queued\r\n");
          for (const waiter of [...waiters]) waiter();
          continue;
        }
        const eol = buffer.indexOf("\r\n");
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString("latin1");
        buffer = buffer.subarray(eol + 2);
        log.push(line);
        const verb = line.split(" ")[0]!.toUpperCase();
        if (verb === "EHLO") {
          const offerTls = !secure && options.starttls !== false;
          write(
            "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n" +
              (offerTls ? "250-STARTTLS\r\n" : "") + "250 ENHANCEDSTATUSCODES\r\n",
          );
        } else if (verb === "HELO") {
          write("250 mx.test\r\n");
        } else if (verb === "STARTTLS") {
          write(options.starttlsReply ?? "220 2.0.0 Ready to start TLS\r\n");
          // RFC 3207: whatever the client sent after STARTTLS is not part of the TLS session.
          buffer = Buffer.alloc(0);
          raw.removeListener("data", onBytes);
          // Out of flowing mode, or the raw socket's reads go on and take the ClientHello
          // before the TLS layer sees it: the handshake then never ends (smtp-server's unpipe
          // pauses its socket the same way).
          raw.pause();
          const secured = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
          secured.on("error", () => {});
          secured.once("secure", () => {
            secure = true;
            log.push("<TLS>");
          });
          secured.on("data", onBytes);
          socket = secured;
          return;
        } else if (verb === "MAIL") {
          mailFrom = line;
          rcptTo = [];
          write("250 2.1.0 Ok\r\n");
        } else if (verb === "RCPT") {
          rcptTo.push(line);
          write("250 2.1.5 Ok\r\n");
        } else if (verb === "DATA") {
          inData = true;
          write("354 End data with <CR><LF>.<CR><LF>\r\n");
        } else if (verb === "RSET" || verb === "NOOP") {
          write("250 2.0.0 Ok\r\n");
        } else if (verb === "QUIT") {
          write("221 2.0.0 Bye\r\n");
          socket.end();
          return;
        } else {
          write("502 5.5.2 Error: command not recognized\r\n");
        }
      }
    };
    raw.on("data", onBytes);
    raw.write("220 mx.test ESMTP\r\n");
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  mx.port = (server.address() as net.AddressInfo).port;
  return mx;
}

/** Undoes dot-stuffing of a data section that ends with CRLF.CRLF (RFC 5321 §4.5.2). */
export function unstuff(wire: Uint8Array): Uint8Array {
  const text = new TextDecoder("latin1").decode(wire);
  const body = text.endsWith("\r\n.\r\n") ? text.slice(0, -3) : text === ".\r\n" ? "" : text;
  const lines = body.split("\r\n");
  const out = lines.map((l) => (l.startsWith(".") ? l.slice(1) : l)).join("\r\n");
  return Uint8Array.from(out, (c) => c.charCodeAt(0));
}
