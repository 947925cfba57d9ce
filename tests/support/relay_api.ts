/**
 * What end-to-end tests ask the relay's HTTP API again and again: a fresh SMTP credential, and a
 * message's status once it has reached some state.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Relay } from "./relay_process.ts";

/** The one-time view of a credential returned by `POST /v1/credentials`. */
export interface NewCredential {
  id: string;
  username: string;
  password: string;
}

/** Creates a credential with the admin token and checks the documented 201 shape. */
export async function createCredential(relay: Relay, name = "wordpress"): Promise<NewCredential> {
  const res = await relay.api("/v1/credentials", { body: { name } });
  assert.equal(res.status, 201, `POST /v1/credentials answered ${JSON.stringify(res.json)}`);
  const { id, username, password } = res.json;
  assert.equal(typeof id, "string");
  assert.equal(typeof username, "string");
  assert.equal(typeof password, "string");
  assert.ok(password.length >= 20, "the password is long enough to be a secret");
  return { id, username, password };
}

/** A recipient as `GET /v1/messages/:id` shows it. */
export interface RecipientView {
  address: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_reply: string | null;
  category: string | null;
  /** The source address of the last attempt. */
  source_address?: string | null;
  /** For a deferred recipient: why it waits and when it is tried next, in one sentence. */
  waiting?: string;
}

/** An event as `GET /v1/messages/:id` shows it. */
export interface EventView {
  type: string;
  at: string;
  recipient: string | null;
  reply: string | null;
  category: string | null;
  remote_host: string | null;
  local_address?: string | null;
  tls: string | null;
  next_attempt_at?: string;
}

/** The body of `GET /v1/messages/:id`. */
export interface MessageView {
  id: string;
  from: string;
  size: number;
  subject: string;
  message_id: string;
  created_at: string;
  via: string;
  recipients: RecipientView[];
  events: EventView[];
}

/** Fetches `GET /v1/messages/:id`, which must answer 200. */
export async function getMessage(relay: Relay, id: string): Promise<MessageView> {
  const res = await relay.api(`/v1/messages/${id}`);
  assert.equal(res.status, 200, `GET /v1/messages/${id} answered ${JSON.stringify(res.json)}`);
  return res.json as MessageView;
}

/**
 * Polls `GET /v1/messages/:id` until `done` holds, and returns that view; rejects with the last
 * view seen after `timeoutMs`.
 */
export async function waitForMessage(
  relay: Relay,
  id: string,
  done: (message: MessageView) => boolean,
  timeoutMs = 20_000,
): Promise<MessageView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const message = await getMessage(relay, id);
    if (done(message)) return message;
    if (Date.now() > deadline) {
      throw new Error(
        `Cannot see message ${id} reach the awaited state within ${timeoutMs} ms: ` +
          `last view ${JSON.stringify(message)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until every recipient of message `id` has `status`. */
export function waitForStatus(
  relay: Relay,
  id: string,
  status: string,
  timeoutMs?: number,
): Promise<MessageView> {
  return waitForMessage(
    relay,
    id,
    (m) => m.recipients.length > 0 && m.recipients.every((r) => r.status === status),
    timeoutMs,
  );
}

/** The queue id in a `250 2.0.0 OK queued as <id>` reply. */
export function queuedId(reply: string): string {
  const match = /OK queued as ([0-9A-Z]{26})\b/.exec(reply);
  assert.ok(match, `expected a "queued as <id>" reply, got ${JSON.stringify(reply)}`);
  return match[1]!;
}

/** The relay's self-signed development certificate, to trust in TLS clients. */
export function devCertificate(relay: Relay): Promise<string> {
  return Deno.readTextFile(`${relay.dataDir}/dev-cert.pem`);
}
