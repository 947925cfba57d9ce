/**
 * A lean outbound SMTP client for the throughput measurement of issue 18: a reply parser and a
 * command writer over one byte transport, one write per pipelined batch and per small body with
 * its terminator. Plaintext only (no STARTTLS, no AUTH): it measures how much of the relay's CPU
 * per message the client engine under OutboundSession could give back at most. Measurement only:
 * OutboundSession.open uses it when LEAN_CLIENT_PROTOTYPE is `node` (node:net) or `deno`
 * (Deno.connect) and the session needs no TLS or AUTH; there are no reply timeouts.
 */
import * as net from "node:net";
import type { RecipientOutcome } from "./outbound_session.ts";

interface Reply {
  code: number;
  text: string;
}

/** A byte pipe: node:net, or Deno.connect. */
interface Transport {
  write(bytes: Uint8Array): void;
  close(): void;
  /** Starts reading; nothing is read before, so no reply can come before its reader. */
  start(onData: (chunk: Uint8Array) => void, onEnd: (err?: Error) => void): void;
  localAddress?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function nodeTransport(host: string, port: number, localAddress?: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    socket.setNoDelay(true);
    let ended: (err?: Error) => void = () => {};
    const t: Transport = {
      write: (b) => socket.write(b),
      close: () => socket.destroy(),
      start: (onData, onEnd) => {
        ended = onEnd;
        socket.on("data", onData);
      },
    };
    socket.once("connect", () => {
      if (socket.localAddress) t.localAddress = socket.localAddress;
      resolve(t);
    });
    socket.once("error", (e) => {
      reject(e);
      ended(e);
    });
    socket.once("close", () => ended());
  });
}

async function denoTransport(host: string, port: number): Promise<Transport> {
  const conn = await Deno.connect({ hostname: host, port });
  conn.setNoDelay(true);
  let closed = false;
  const t: Transport = {
    write: (b) => {
      // Small writes on a fresh socket complete whole; the prototype does not queue.
      conn.write(b).catch(() => t.close());
    },
    close: () => {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* gone */ }
    },
    start: (onData, onEnd) => void read(onData, onEnd),
    localAddress: (conn.localAddr as Deno.NetAddr).hostname,
  };
  const read = async (onData: (c: Uint8Array) => void, onEnd: (e?: Error) => void) => {
    const buf = new Uint8Array(16384);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        onData(buf.slice(0, n));
      }
      onEnd();
    } catch (e) {
      onEnd(e as Error);
    }
  };
  return t;
}

/** Doubles a dot at the start of a line and appends the terminator, in one buffer. */
export function dotStuff(body: Uint8Array): Uint8Array {
  let dots = body[0] === 0x2e ? 1 : 0;
  for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) {
    if (body[i + 1] === 0x2e) dots++;
  }
  const crlf = body.length >= 2 && body[body.length - 2] === 0x0d &&
    body[body.length - 1] === 0x0a;
  const tail = crlf ? 3 : 5;
  const out = new Uint8Array(body.length + dots + tail);
  let o = 0, from = 0;
  if (body[0] === 0x2e) out[o++] = 0x2e;
  if (dots > (body[0] === 0x2e ? 1 : 0)) {
    for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) {
      if (body[i + 1] !== 0x2e) continue;
      out.set(body.subarray(from, i + 1), o);
      o += i + 1 - from;
      out[o++] = 0x2e;
      from = i + 1;
    }
  }
  out.set(body.subarray(from), o);
  o += body.length - from;
  out.set(crlf ? [0x2e, 0x0d, 0x0a] : [0x0d, 0x0a, 0x2e, 0x0d, 0x0a], o);
  return out;
}

export class LeanSession {
  #t: Transport;
  #buf = "";
  #lines: string[] = [];
  #waiting: ((r: Reply) => void)[] = [];
  /** Replies that came before anyone waited for them (the greeting, in the tick of connect). */
  #early: Reply[] = [];
  #broken = false;
  #caps = new Set<string>();
  #cleanSince: number | null = null;
  deliveries = 0;
  policyKey = "plain";
  info: { remoteHost: string; remoteName?: string; localAddress?: string };

  private constructor(t: Transport, remoteHost: string) {
    this.#t = t;
    this.info = { remoteHost, ...(t.localAddress ? { localAddress: t.localAddress } : {}) };
    t.start((chunk) => this.#onData(chunk), () => {
      this.#broken = true;
      for (const w of this.#waiting.splice(0)) w({ code: 0, text: "connection closed" });
    });
  }

  static async open(
    host: string,
    port: number,
    heloName: string,
    kind: "node" | "deno",
    localAddress?: string,
  ): Promise<LeanSession> {
    const t = kind === "deno"
      ? await denoTransport(host, port)
      : await nodeTransport(host, port, localAddress);
    const s = new LeanSession(t, `${host}:${port}`);
    const greeting = await s.#next();
    if (greeting.code !== 220) throw new Error(greeting.text);
    s.#t.write(enc.encode(`EHLO ${heloName}\r\n`));
    const ehlo = await s.#next();
    if (ehlo.code !== 250) throw new Error(ehlo.text);
    for (const line of ehlo.text.split("\n").slice(1)) {
      s.#caps.add(line.slice(4).split(" ")[0]!.toUpperCase());
    }
    if (s.#caps.has("STARTTLS")) throw new Error("prototype: STARTTLS offered");
    return s;
  }

  #onData(chunk: Uint8Array) {
    this.#buf += dec.decode(chunk);
    let nl;
    while ((nl = this.#buf.indexOf("\n")) !== -1) {
      const line = this.#buf.slice(0, nl).replace(/\r$/, "");
      this.#buf = this.#buf.slice(nl + 1);
      this.#lines.push(line);
      if (line[3] !== "-") {
        const text = this.#lines.join("\n");
        this.#lines = [];
        const reply = { code: Number(line.slice(0, 3)), text };
        const waiter = this.#waiting.shift();
        if (waiter) waiter(reply);
        else this.#early.push(reply);
      }
    }
  }

  #next(): Promise<Reply> {
    const early = this.#early.shift();
    if (early) return Promise.resolve(early);
    if (this.#broken) return Promise.resolve({ code: 0, text: "connection closed" });
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  get usable() {
    return !this.#broken;
  }

  async send(
    from: string,
    to: readonly string[],
    body: Uint8Array,
    size: number,
  ): Promise<RecipientOutcome[]> {
    this.deliveries++;
    this.#cleanSince = null;
    const params = (this.#caps.has("SIZE") ? ` SIZE=${size}` : "") +
      (this.#caps.has("8BITMIME") ? " BODY=8BITMIME" : "");
    let batch = `MAIL FROM:<${from}>${params}\r\n`;
    for (const r of to) batch += `RCPT TO:<${r}>\r\n`;
    batch += "DATA\r\n";
    const replies = [this.#next(), ...to.map(() => this.#next()), this.#next()];
    this.#t.write(enc.encode(batch));
    const [mail, ...rest] = await Promise.all(replies);
    const data = rest.pop()!;
    const fail = (r: Reply) =>
      to.map((rcpt) => ({
        rcpt,
        kind: r.code >= 500 ? "permanent" as const : "transient" as const,
        reply: r.text,
        code: r.code,
      }));
    if (mail!.code !== 250) return fail(mail!);
    if (data.code !== 354) return fail(data);
    const done = this.#next();
    this.#t.write(dotStuff(body));
    const end = await done;
    if (end.code !== 250) return fail(end);
    this.#cleanSince = performance.now();
    return to.map((rcpt, i) => {
      const r = rest[i]!;
      return r.code === 250 || r.code === 251
        ? { rcpt, kind: "success" as const, reply: end.text, code: 250 }
        : {
          rcpt,
          kind: r.code >= 500 ? "permanent" as const : "transient" as const,
          reply: r.text,
          code: r.code,
        };
    });
  }

  async reset(): Promise<boolean> {
    if (this.#broken) return false;
    if (this.#cleanSince !== null && performance.now() - this.#cleanSince < 1000) return true;
    const r = this.#next();
    this.#t.write(enc.encode("RSET\r\n"));
    return (await r).code === 250;
  }

  async close(): Promise<void> {
    if (!this.#broken) {
      const r = this.#next();
      this.#t.write(enc.encode("QUIT\r\n"));
      await Promise.race([r, new Promise((res) => setTimeout(res, 1000))]);
    }
    this.#broken = true;
    this.#t.close();
  }
}
