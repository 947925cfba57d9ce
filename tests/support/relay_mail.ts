/**
 * Helpers the shaping, bounce, pool and queue tests share: a config file for the relay, mail
 * submitted over a trusted-network session, and waits on the relay's API.
 *
 * @module
 */
import type { Relay } from "./relay_process.ts";
import { queuedId, RawSmtp } from "./raw_smtp.ts";
import { TAG_HEADER } from "./operations.ts";

/** Writes `config` as the relay's POSTERN_CONFIG file; returns its path. */
export async function writeConfig(config: unknown): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "postern_cfg_" });
  const path = `${dir}/postern.json`;
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
  return path;
}

export interface OutgoingMessage {
  from: string;
  to: string | string[];
  /** Tag put in X-Postern-Test-Id, so the sink side can tell messages apart. */
  tag: string;
  /** Extra header lines, e.g. "X-Postern-Pool: warm". */
  headers?: string[];
}

/** Submits messages over one trusted-network session (no AUTH); returns their queue ids. */
export async function submit(relay: Relay, messages: OutgoingMessage[]): Promise<string[]> {
  const client = await RawSmtp.connect(relay.smtpPort);
  try {
    await client.hello();
    const ids: string[] = [];
    for (const m of messages) {
      const to = Array.isArray(m.to) ? m.to : [m.to];
      const mail = await client.command(`MAIL FROM:<${m.from}>`);
      if (mail.code !== 250) throw new Error(`MAIL FROM refused: ${mail.raw}`);
      for (const rcpt of to) {
        const r = await client.command(`RCPT TO:<${rcpt}>`);
        if (r.code !== 250) throw new Error(`RCPT TO:<${rcpt}> refused: ${r.raw}`);
      }
      const go = await client.command("DATA");
      if (go.code !== 354) throw new Error(`DATA refused: ${go.raw}`);
      await client.write(
        [
          `From: ${m.from || "mailer@origin.test"}`,
          `To: ${to.join(", ")}`,
          `Subject: test ${m.tag}`,
          `${TAG_HEADER}: ${m.tag}`,
          ...(m.headers ?? []),
          "",
          `Body of ${m.tag}.`,
          "",
        ].join("\r\n"),
      );
      ids.push(queuedId(await client.endData()));
    }
    return ids;
  } finally {
    await client.quit();
  }
}

/** Polls `fn` until it returns a value that is not undefined; rejects after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Cannot see ${what} within ${timeoutMs} ms${last ? `: last error ${last}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `GET /v1/queue` until a site matching `pred` appears; returns it. */
export function waitForSite(
  relay: Relay,
  // deno-lint-ignore no-explicit-any -- the API's JSON
  pred: (site: any) => boolean,
  what: string,
  timeoutMs?: number,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  return eventually(
    async () => {
      const res = await relay.api("/v1/queue");
      if (res.status !== 200) throw new Error(`GET /v1/queue answered ${res.status}`);
      // deno-lint-ignore no-explicit-any
      return (res.json.data as any[]).find(pred);
    },
    what,
    timeoutMs,
  );
}
