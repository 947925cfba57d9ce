/**
 * What the account, credential, domain and DKIM tests share: API calls that may name an account
 * (`X-Postern-Account`), authenticated SMTP sessions over STARTTLS, messages built byte for byte,
 * and two independent DKIM verifiers (mailauth, and Debian's python3-dkim) that read keys from
 * the loopback DNS server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { authenticate } from "mailauth";
import { type Relay, startRelay } from "./relay_process.ts";
import { type DnsServer, startDnsServer, type Zone } from "./dns_server.ts";
import { type Sink, startSink } from "./sink.ts";
import { sendTransaction, SmtpClient, type SmtpReply } from "./smtp_client.ts";

export interface CallInit {
  /** @default "POST" with a body, "GET" without */
  method?: string;
  /** Sent as JSON; a string is sent as it is (for malformed-JSON tests). */
  body?: unknown;
  /** Bearer token. @default the relay's admin token */
  token?: string;
  /** Sent as `X-Postern-Account`. */
  account?: string;
}

export interface CallResult {
  status: number;
  // deno-lint-ignore no-explicit-any -- tests index into arbitrary response shapes.
  json: any;
  text: string;
}

/** Calls the relay's HTTP API, optionally on behalf of another account. */
export async function call(relay: Relay, path: string, init: CallInit = {}): Promise<CallResult> {
  const headers = new Headers({ authorization: `Bearer ${init.token ?? relay.adminToken}` });
  if (init.account !== undefined) headers.set("x-postern-account", init.account);
  if (init.body !== undefined) headers.set("content-type", "application/json");
  const response = await fetch(`http://127.0.0.1:${relay.httpPort}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === "string" ? init.body : JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json, text };
}

/** Asserts the documented error shape `{error:{code,message,details?}}` and the status. */
export function assertError(res: CallResult, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text}`);
  assert.equal(res.json?.error?.code, code, res.text);
  assert.equal(typeof res.json.error.message, "string");
}

/**
 * Creates an account with the admin token; returns its id. Accounts start with
 * `require_verified_sender` on: a test that sends as a domain it does not verify says so in
 * `settings`.
 */
export async function newAccount(
  relay: Relay,
  name: string,
  settings: { require_verified_sender?: boolean; pools?: string[] } = {},
): Promise<string> {
  const res = await call(relay, "/v1/accounts", { body: { name, ...settings } });
  assert.equal(res.status, 201, res.text);
  return res.json.id;
}

export interface Issued {
  id: string;
  username: string;
  password: string;
  secretId: string;
}

/** Creates a credential (with optional scopes) in `account` (default: the default account). */
export async function newCredential(
  relay: Relay,
  body: Record<string, unknown> = {},
  account?: string,
): Promise<Issued> {
  const res = await call(relay, "/v1/credentials", {
    body: { name: "app", ...body },
    ...(account ? { account } : {}),
  });
  assert.equal(res.status, 201, res.text);
  return {
    id: res.json.id,
    username: res.json.username,
    password: res.json.password,
    secretId: res.json.secret_id,
  };
}

const encoder = new TextEncoder();

/** A session on the submission port after EHLO and STARTTLS, not yet authenticated. */
export async function tlsSession(relay: Relay): Promise<SmtpClient> {
  const cert = await Deno.readTextFile(`${relay.dataDir}/dev-cert.pem`);
  const { client } = await SmtpClient.connect({ port: relay.smtpPort });
  await client.command("EHLO client.test");
  const tls = await client.startTls({ caCert: cert });
  assert.equal(tls.code, 220, tls.raw);
  await client.command("EHLO client.test");
  return client;
}

/** AUTH with `mechanism`; returns the reply and the session (still open either way). */
export async function login(
  relay: Relay,
  username: string,
  secret: string,
  mechanism: "PLAIN" | "LOGIN" | "XOAUTH2" = "PLAIN",
): Promise<{ client: SmtpClient; reply: SmtpReply }> {
  const client = await tlsSession(relay);
  const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
  let reply: SmtpReply;
  if (mechanism === "PLAIN") {
    reply = await client.command(`AUTH PLAIN ${b64(`\0${username}\0${secret}`)}`);
  } else if (mechanism === "LOGIN") {
    await client.command("AUTH LOGIN");
    await client.command(b64(username));
    reply = await client.command(b64(secret));
  } else {
    reply = await client.command(
      `AUTH XOAUTH2 ${b64(`user=${username}\x01auth=Bearer ${secret}\x01\x01`)}`,
    );
  }
  return { client, reply };
}

/** Logs in and insists on 235. */
export async function session(relay: Relay, credential: Issued): Promise<SmtpClient> {
  const { client, reply } = await login(relay, credential.username, credential.password);
  assert.equal(reply.code, 235, reply.raw);
  return client;
}

/** A message with CRLF line endings and dot-stuffing, ready for {@linkcode sendTransaction}. */
export function message(
  options: { from: string; to?: string; subject?: string; body?: string; headers?: string[] },
): Uint8Array {
  const text = [
    `From: ${options.from}`,
    `To: ${options.to ?? "user@dest.test"}`,
    `Subject: ${options.subject ?? "hello"}`,
    ...(options.headers ?? []),
    "",
    ...(options.body ?? "Hello.\r\n").split(/\r?\n/),
  ].join("\r\n").replace(/\r\n\./g, "\r\n..");
  return encoder.encode(text.endsWith("\r\n") ? text : text + "\r\n");
}

/** One transaction on an open session. */
export function send(
  client: SmtpClient,
  from: string,
  data: Uint8Array,
  to: string[] = ["user@dest.test"],
): Promise<SmtpReply> {
  return sendTransaction(client, from, to, data);
}

/** `dns.promises.resolve` for mailauth, answering from a test zone (TXT only). */
export function zoneResolver(zone: Zone) {
  return (name: string, type: string): Promise<string[][]> => {
    const records = zone.txt?.[name.toLowerCase().replace(/\.$/, "")];
    if (type !== "TXT" || !records || records.length === 0) {
      return Promise.reject(Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), {
        code: type === "TXT" ? "ENOTFOUND" : "ENODATA",
      }));
    }
    return Promise.resolve(records.map((r) => typeof r === "string" ? [r] : r));
  };
}

export interface MailauthDkim {
  result: string;
  domain: string;
  selector: string;
  algorithm: string;
  headers: string;
}

/** Verifies every DKIM signature with mailauth's `authenticate`, keys from `zone`. */
export async function mailauthVerify(
  raw: Uint8Array,
  zone: Zone,
  sender = "app@example.test",
): Promise<{ dkim: MailauthDkim[]; dmarc: string | undefined }> {
  const result = await authenticate(Buffer.from(raw), {
    resolver: zoneResolver(zone) as never,
    ip: "127.0.0.1",
    helo: "relay.test",
    sender,
    mta: "sink.test",
    disableArc: true,
    disableBimi: true,
  });
  // deno-lint-ignore no-explicit-any -- mailauth's result rows are loosely typed.
  const rows = (result.dkim?.results ?? []) as any[];
  return {
    dkim: rows.map((r) => ({
      result: r.status?.result,
      domain: r.signingDomain,
      selector: r.selector,
      algorithm: r.algo,
      headers: String(r.signingHeaders?.keys ?? ""),
    })),
    // deno-lint-ignore no-explicit-any
    dmarc: (result.dmarc as any)?.status?.result,
  };
}

let python: Promise<string> | undefined;

/** A python3 that has Debian's `dkim` module (python3-dkim; pyenv shims usually lack it). */
function dkimPython(): Promise<string> {
  return python ??= (async () => {
    for (const candidate of ["/usr/bin/python3", "python3"]) {
      try {
        const { code } = await new Deno.Command(candidate, {
          args: ["-c", "import dkim, dns.resolver, nacl"],
          stdout: "null",
          stderr: "null",
        }).output();
        if (code === 0) return candidate;
      } catch {
        // not installed
      }
    }
    throw new Error(
      "Cannot verify DKIM with python3-dkim as no python3 imports it: apt-get install python3-dkim",
    );
  })();
}

/**
 * dkimpy's verifier, with its DNS lookups sent to the loopback DNS server (dnspython, pointed at
 * `dns.port`) instead of the system resolver. One boolean per DKIM-Signature, in header order.
 */
const DKIMPY = `
import sys, json, dkim, dns.resolver
port = int(sys.argv[1])
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = port
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    try:
        answer = resolver.resolve(name, "TXT", lifetime=timeout)
    except Exception:
        return None
    for rdata in answer:
        return b"".join(rdata.strings)
    return None
message = sys.stdin.buffer.read()
d = dkim.DKIM(message)
count = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
print(json.dumps([bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]))
`;

export async function dkimpyVerify(raw: Uint8Array, dns: DnsServer): Promise<boolean[]> {
  const child = new Deno.Command(await dkimPython(), {
    args: ["-c", DKIMPY, String(dns.port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(raw);
  await writer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `dkimpy failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(stdout.trim());
}

/** The DKIM-Signature fields of a received message's header block, unfolded. */
export function dkimSignatures(headers: string): Map<string, string>[] {
  const unfolded = headers.replace(/\r?\n[ \t]+/g, " ");
  return unfolded.split(/\r?\n/).filter((l) => /^dkim-signature:/i.test(l)).map((l) => {
    const tags = new Map<string, string>();
    for (const part of l.slice(l.indexOf(":") + 1).split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s+/g, ""));
    }
    return tags;
  });
}

/** Publishes a domain's records (as the API lists them) in the test zone. */
export function publish(zone: Zone, records: { name: string; value: string }[]): void {
  zone.txt ??= {};
  for (const r of records) zone.txt[r.name] = [r.value];
}

/** Adds a domain (to `account`, else the default), publishes its records and verifies it. */
export async function verifiedDomain(
  relay: Relay,
  zone: Zone,
  name: string,
  options: { algorithms?: string[]; account?: string } = {},
  // deno-lint-ignore no-explicit-any -- the domain view, as tests index into it.
): Promise<any> {
  const created = await call(relay, "/v1/domains", {
    body: { name, dkim: { algorithms: options.algorithms ?? ["rsa"] } },
    ...(options.account ? { account: options.account } : {}),
  });
  assert.equal(created.status, 201, created.text);
  publish(zone, created.json.records);
  const verified = await call(relay, `/v1/domains/${created.json.id}/verify`, {
    method: "POST",
    ...(options.account ? { account: options.account } : {}),
  });
  assert.equal(verified.json.verified, true, verified.text);
  return verified.json;
}

export interface TenantEnv {
  relay: Relay;
  dns: DnsServer;
  sink: Sink;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * DNS (for domain verification and DKIM keys; relay.test is the SPF include), a sink that every
 * domain is routed to, and a relay using both, with `env` added.
 */
export async function startTenantRelay(env: Record<string, string> = {}): Promise<TenantEnv> {
  const dns = await startDnsServer({ txt: { "relay.test": ["v=spf1 ip4:127.0.0.1 -all"] } });
  const sink = await startSink();
  let relay: Relay;
  try {
    relay = await startRelay({
      env: {
        POSTERN_DNS: `127.0.0.1:${dns.port}`,
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        ...env,
      },
    });
  } catch (error) {
    await Promise.all([dns.close(), sink.close()]);
    throw error;
  }
  return {
    relay,
    dns,
    sink,
    async [Symbol.asyncDispose]() {
      await relay[Symbol.asyncDispose]();
      await Promise.all([dns.close(), sink.close()]);
    },
  };
}
