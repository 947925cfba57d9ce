import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { newWebhookSecret, webhookHeaders } from "./signing.ts";

Deno.test("webhookHeaders() produces a signature the standardwebhooks verifier accepts", () => {
  const secret = newWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const body = JSON.stringify({ type: "delivered", data: { id: "x" } });
  const headers = webhookHeaders([secret], "01EVENT", Date.now(), body);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
});

Deno.test("webhookHeaders() signs with every live secret so either verifies during a rotation", () => {
  const old = newWebhookSecret();
  const fresh = newWebhookSecret();
  const body = '{"a":1}';
  const headers = webhookHeaders([old, fresh], "01EVENT", Date.now(), body);
  assert.equal(headers["webhook-signature"]!.split(" ").length, 2);
  new Webhook(old).verify(body, headers);
  new Webhook(fresh).verify(body, headers);
  assert.throws(() => new Webhook(newWebhookSecret()).verify(body, headers));
});
