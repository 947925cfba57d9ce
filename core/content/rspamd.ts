/**
 * A client for rspamd's HTTP protocol (`POST /checkv2`, rspamd.com/doc/developers/protocol.html).
 * The envelope travels as request headers (From, Rcpt, IP, Helo, User, Queue-Id) and the message
 * as a chunked request body read from a stream: a 50 MB message goes out chunk by chunk as it is
 * read from the store, never joined into a second copy. Any failure (refused connection, timeout,
 * a status other than 200, a reply that is not rspamd's JSON) throws RspamdError; what that means
 * for the message is the account's `on_error` (core/policy/content_policy.ts).
 *
 * @module
 */

export interface ScanEnvelope {
  /** MAIL FROM; "" for the null sender. */
  mailFrom: string;
  recipients: readonly string[];
  clientAddress: string;
  heloName: string;
  /** The credential that submitted the message (rspamd's authenticated `User`); null = none. */
  user: string | null;
  queueId: string;
}

export interface ScanRequest extends ScanEnvelope {
  /** The message as it will be sent, streamed; called once per scan. */
  body: () => AsyncIterable<Uint8Array>;
}

export interface RspamdSymbol {
  name: string;
  score: number;
}

export interface RspamdResult {
  score: number;
  /** rspamd's own reject threshold. */
  requiredScore: number;
  /** rspamd's recommended action: "no action", "add header", "reject", ... */
  action: string;
  /**
   * rspamd stopped early with a pre-result (GTUBE, a force_actions rule): its `action` is final,
   * whatever the score.
   */
  passthrough: boolean;
  /** Symbols that matched, highest score first. */
  symbols: RspamdSymbol[];
  /** rspamd's short reason for an SMTP reply (`messages.smtp_message`), if it gave one. */
  smtpMessage: string | null;
  /** Header fields rspamd asked to add (`milter.add_headers`). */
  addHeaders: [string, string][];
}

export class RspamdError extends Error {
  override name = "RspamdError";
}

export interface RspamdClientOptions {
  url: string;
  timeoutMs: number;
  password?: string;
}

export class RspamdClient {
  readonly #endpoint: string;
  constructor(private options: RspamdClientOptions) {
    this.#endpoint = new URL("checkv2", options.url.endsWith("/") ? options.url : options.url + "/")
      .href;
  }

  async check(req: ScanRequest): Promise<RspamdResult> {
    const headers = new Headers({ "content-type": "message/rfc822" });
    // rspamd takes an empty From as the null sender; several Rcpt values arrive comma-joined,
    // which rspamd splits as it does repeated headers.
    headers.set("from", req.mailFrom === "" ? "<>" : req.mailFrom);
    for (const rcpt of req.recipients) headers.append("rcpt", rcpt);
    headers.set("ip", req.clientAddress);
    headers.set("helo", headerSafe(req.heloName));
    if (req.user) headers.set("user", req.user);
    headers.set("queue-id", req.queueId);
    if (this.options.password) headers.set("password", this.options.password);
    const source = req.body()[Symbol.asyncIterator]();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await source.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel() {
        await source.return?.();
      },
    }, { highWaterMark: 0 });
    let response: Response;
    try {
      response = await fetch(this.#endpoint, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      throw new RspamdError(
        (err as Error).name === "TimeoutError"
          ? `no answer within ${this.options.timeoutMs} ms`
          : `cannot reach rspamd: ${(err as Error).message}`,
      );
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw new RspamdError(`reading rspamd's answer: ${(err as Error).message}`);
    }
    if (response.status !== 200) {
      throw new RspamdError(`rspamd answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return parseResult(text);
  }
}

/** rspamd reads header values as they come; a HELO name with odd bytes is made printable. */
function headerSafe(text: string): string {
  return text.replace(/[^\x21-\x7e]/g, "?").slice(0, 255) || "unknown";
}

function num(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new RspamdError(`rspamd's answer has no numeric ${what}`);
  }
  return v;
}

/** rspamd's /checkv2 JSON, checked field by field. */
export function parseResult(text: string): RspamdResult {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RspamdError(`rspamd's answer is not JSON: ${text.slice(0, 200)}`);
  }
  if (typeof json !== "object" || json === null) throw new RspamdError("rspamd's answer is empty");
  const action = json.action;
  if (typeof action !== "string") throw new RspamdError("rspamd's answer names no action");
  const symbols: RspamdSymbol[] = [];
  for (const [name, s] of Object.entries((json.symbols ?? {}) as Record<string, unknown>)) {
    const score = (s as { score?: unknown })?.score;
    symbols.push({ name, score: typeof score === "number" ? score : 0 });
  }
  symbols.sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : 1));
  const messages = (json.messages ?? {}) as Record<string, unknown>;
  const smtp = messages.smtp_message;
  const addHeaders: [string, string][] = [];
  const milter = (json.milter ?? {}) as { add_headers?: Record<string, unknown> };
  for (const [name, v] of Object.entries(milter.add_headers ?? {})) {
    const value = typeof v === "string" ? v : (v as { value?: unknown })?.value;
    if (typeof value === "string") addHeaders.push([name, value]);
  }
  return {
    score: num(json.score, "score"),
    requiredScore: num(json.required_score, "required_score"),
    action,
    passthrough: json.is_skipped === true,
    symbols,
    smtpMessage: typeof smtp === "string" && smtp !== "" ? smtp : null,
    addHeaders,
  };
}
