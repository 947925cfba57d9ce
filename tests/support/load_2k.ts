/**
 * The load two end-to-end cost tests share (write_amplification_test.ts, kv_calls_test.ts): 2 KB
 * one-recipient messages from parallel SMTP sessions, counted delivered by the relay's metrics.
 *
 * @module
 */
import type { Relay } from "./relay_process.ts";
import type { Sink } from "./sink.ts";
import { eventually } from "./relay_fixture.ts";

const BODY_BYTES = 2048;

/**
 * A 2 KB message to `user<n>@dest.test`: headers (the subject and Message-ID numbered after
 * `subject` and `idPrefix`) and a body of 76-character lines.
 */
export function message2k(n: number, subject: string, idPrefix: string): string {
  const head = [
    "From: app@origin.test",
    `To: user${n}@dest.test`,
    `Subject: ${subject} ${n}`,
    `Message-ID: <${idPrefix}-${n}@origin.test>`,
    "",
  ].join("\r\n") + "\r\n";
  const line = "x".repeat(76) + "\r\n";
  let body = "";
  while (head.length + body.length + line.length <= BODY_BYTES) body += line;
  return head + body;
}

/** Deliveries the relay has recorded (its `postern_deliveries_total{outcome="delivered"}`). */
export async function deliveredCount(relay: Relay): Promise<number> {
  const res = await relay.api("/metrics");
  const m = /^postern_deliveries_total\{outcome="delivered"\} (\S+)$/m.exec(String(res.json));
  return m ? Number(m[1]) : 0;
}

/**
 * Runs `sessions` senders at once, each sending `per` messages numbered from its own start, and
 * waits until the sink has them and the relay has recorded them delivered.
 */
export async function relayBatch(
  relay: Relay,
  sink: Sink,
  batch: { first: number; sessions: number; per: number },
  send: (first: number, count: number) => Promise<void>,
) {
  const { first, sessions, per } = batch;
  const before = await deliveredCount(relay);
  await Promise.all(Array.from({ length: sessions }, (_, s) => send(first + s * per, per)));
  const total = sessions * per;
  await sink.waitFor(first + total, { timeoutMs: 120_000 });
  await eventually(
    async () => (await deliveredCount(relay)) >= before + total ? true : undefined,
    `${total} deliveries recorded`,
    120_000,
  );
}
