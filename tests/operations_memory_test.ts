/**
 * A message near the size limit goes through the real relay without the relay holding it in
 * memory several times over, and arrives byte for byte.
 */
import assert from "node:assert/strict";
import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
import { queuedId, SmtpClient } from "./support/smtp_client.ts";
import {
  procStatusBytes,
  randomBody,
  TAG_HEADER,
  taggedMessage,
  tagOf,
} from "./support/operations.ts";

const BODY_BYTES = 50_000_000;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes after the header block's blank line. */
function bodyOf(raw: Uint8Array): Uint8Array {
  for (let i = 0; i + 3 < raw.length; i++) {
    if (raw[i] === 13 && raw[i + 1] === 10 && raw[i + 2] === 13 && raw[i + 3] === 10) {
      return raw.subarray(i + 4);
    }
  }
  throw new Error("Cannot find the end of the header block: no blank line");
}

Deno.test("a 50 MB message is accepted and delivered intact while the relay's peak memory grows by less than three times its size", async () => {
  const sink = await startSink();
  try {
    await using relay = await startRelay({
      env: {
        POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`,
        POSTERN_TRUSTED_NETWORKS: "127.0.0.1/32",
      },
    });
    const client = await SmtpClient.open(relay.smtpPort);
    try {
      await client.hello();
      // A small message first, so the baseline includes every code path a delivery loads.
      queuedId(await client.send("app@origin.test", "user@dest.test", taggedMessage("warm-up")));
      await sink.waitFor(1);
      const before = await procStatusBytes(relay.pid, "VmHWM");

      const body = randomBody(BODY_BYTES);
      const expectedHash = await sha256Hex(body);
      await client.beginData("app@origin.test", "user@dest.test");
      await client.write(`Subject: big\r\n${TAG_HEADER}: big\r\nContent-Type: text/plain\r\n\r\n`);
      for (let offset = 0; offset < body.length; offset += 1 << 20) {
        await client.write(body.subarray(offset, offset + (1 << 20)));
      }
      const reply = await client.endData(60_000);
      const id = queuedId(reply);
      const afterIntake = await procStatusBytes(relay.pid, "VmHWM");

      const messages = await sink.waitFor(2, { timeoutMs: 60_000 });
      const big = messages.find((m) => tagOf(m) === "big");
      assert.ok(big, "the big message reached the sink");
      await relay.waitForLog((l) => l.event === "delivery.attempt" && l.msg === id);
      const afterDelivery = await procStatusBytes(relay.pid, "VmHWM");

      const received = bodyOf(big.raw);
      assert.equal(received.length, body.length);
      assert.equal(await sha256Hex(received), expectedHash);

      const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
      const growth = afterDelivery - before;
      assert.ok(
        growth <= 3 * BODY_BYTES,
        `peak resident memory grew by ${mb(growth)} for a ${mb(BODY_BYTES)} message ` +
          `(before ${mb(before)}, after intake ${mb(afterIntake)}, after delivery ${
            mb(afterDelivery)
          })`,
      );
    } finally {
      await client.quit();
    }
  } finally {
    await sink.close();
  }
});
