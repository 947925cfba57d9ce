/**
 * Webhook signing by the Standard Webhooks scheme (standardwebhooks.com): the secret is `whsec_`
 * plus base64 of random bytes; the signature is `v1,` + base64(HMAC-SHA256(key, "id.ts.body"))
 * with the base64-decoded secret as key. During a rotation several secrets are live and every
 * signature is sent, space-separated, so a receiver holding either secret verifies.
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes } from "node:crypto";

export const SECRET_PREFIX = "whsec_";
/** 32 random bytes (the scheme asks for 24 to 64). */
const SECRET_BYTES = 32;

export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString("base64");
}

function secretKey(secret: string): Uint8Array {
  if (!secret.startsWith(SECRET_PREFIX)) {
    throw new Error("Cannot sign with the webhook secret as it lacks the whsec_ prefix");
  }
  return new Uint8Array(Buffer.from(secret.slice(SECRET_PREFIX.length), "base64"));
}

/** The `webhook-signature` header value for one payload. */
export function signPayload(
  secrets: readonly string[],
  msgId: string,
  timestampSeconds: number,
  body: string,
): string {
  const content = `${msgId}.${timestampSeconds}.${body}`;
  return secrets
    .map((s) => "v1," + createHmac("sha256", secretKey(s)).update(content).digest("base64"))
    .join(" ");
}

/** The three headers the scheme defines, for one delivery attempt. */
export function webhookHeaders(
  secrets: readonly string[],
  msgId: string,
  nowMs: number,
  body: string,
): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  return {
    "webhook-id": msgId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signPayload(secrets, msgId, timestamp, body),
  };
}
