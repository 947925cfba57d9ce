/**
 * Webhook endpoints, their delivery state and the events they gave up on.
 *
 * The signing secret must stay usable by the server, so unlike credentials it cannot be hashed:
 * it is stored sealed (core/auth/secret_box.ts, bound to the endpoint's id) and opened only to
 * sign; it leaves the server only in the answer that creates or rotates it, and the store's
 * other readers see endpoints through publicView(). A rotation keeps the old secret live for
 * 24 h so receivers can switch over; both signatures are sent meanwhile. A deleted endpoint's
 * secrets are overwritten before its record goes.
 */
import { keys } from "./keys.ts";
import { idTimePrefix, shortId } from "../ids.ts";
import { newWebhookSecret } from "../events/signing.ts";
import type { EventType } from "../model.ts";
import { SecretBox } from "../auth/secret_box.ts";

export const ROTATION_OVERLAP_MS = 24 * 3_600_000;

export interface WebhookSecret {
  /** Sealed under the server's secret box (records from before encryption: as issued). */
  secret: string;
  createdAt: number;
  /** Set on rotation: the old secret signs until then. */
  expiresAt: number | null;
}

export interface WebhookEndpoint {
  id: string;
  account: string;
  url: string;
  events: EventType[];
  description: string;
  secrets: WebhookSecret[];
  createdAt: number;
}

export type PublicWebhook = Omit<WebhookEndpoint, "secrets"> & {
  secrets: { createdAt: number; expiresAt: number | null }[];
};

/** Where an endpoint's delivery stands; written by its actor and by replay. */
export interface WebhookState {
  /** Events with ids above this are still to go (an event id or an id time prefix). */
  after: string;
  /** Failed attempts of the head event. */
  attempts: number;
  /** Failed attempts in a row at this endpoint. */
  streak: number;
  /** The head is not tried before this (ms). */
  nextAttemptAt: number;
  failingSince: number | null;
  lastError: string | null;
  lastSuccessAt: number | null;
  delivered: number;
  givenUp: number;
}

/** An event given up after its retries: still in the event log, replayable. */
export interface WebhookFailure {
  eventId: string;
  type: EventType;
  msgId: string;
  attempts: number;
  lastError: string;
  at: number;
}

export function publicView(endpoint: WebhookEndpoint): PublicWebhook {
  return {
    ...endpoint,
    secrets: endpoint.secrets.map(({ createdAt, expiresAt }) => ({ createdAt, expiresAt })),
  };
}

function sealContext(id: string): string {
  return `webhook:${id}`;
}

/** The secrets that sign now (the current one, and a rotated one within its overlap). */
export function liveSecrets(
  endpoint: WebhookEndpoint,
  now: number,
  box: SecretBox,
): Promise<string[]> {
  return Promise.all(
    endpoint.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now)
      .map((s) => box.open(s.secret, sealContext(endpoint.id))),
  );
}

export function initialState(after: string): WebhookState {
  return {
    after,
    attempts: 0,
    streak: 0,
    nextAttemptAt: 0,
    failingSince: null,
    lastError: null,
    lastSuccessAt: null,
    delivered: 0,
    givenUp: 0,
  };
}

export async function createWebhook(
  kv: Deno.Kv,
  box: SecretBox,
  input: { account: string; url: string; events: EventType[]; description?: string; now: number },
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  const secret = newWebhookSecret();
  const id = shortId("wh_", 16);
  const endpoint: WebhookEndpoint = {
    id,
    account: input.account,
    url: input.url,
    events: [...new Set(input.events)],
    description: input.description ?? "",
    secrets: [{
      secret: await box.seal(secret, sealContext(id)),
      createdAt: input.now,
      expiresAt: null,
    }],
    createdAt: input.now,
  };
  // A new endpoint hears of events from its creation on; replay reaches further back.
  const res = await kv.atomic()
    .check({ key: keys.webhook(endpoint.id), versionstamp: null })
    .set(keys.webhook(endpoint.id), endpoint)
    .set(keys.webhookState(endpoint.id), initialState(idTimePrefix(input.now)))
    .commit();
  if (!res.ok) throw new Error(`Cannot create webhook: id ${endpoint.id} exists`);
  return { endpoint, secret };
}

export async function getWebhook(kv: Deno.Kv, id: string): Promise<WebhookEndpoint | null> {
  return (await kv.get<WebhookEndpoint>(keys.webhook(id))).value;
}

/** Every endpoint, or one account's. */
export async function listWebhooks(kv: Deno.Kv, account?: string): Promise<WebhookEndpoint[]> {
  const out: WebhookEndpoint[] = [];
  for await (const e of kv.list<WebhookEndpoint>({ prefix: keys.webhookPrefix() })) {
    if (account === undefined || e.value.account === account) out.push(e.value);
  }
  return out;
}

export async function updateWebhook(
  kv: Deno.Kv,
  id: string,
  change: { url?: string; events?: EventType[]; description?: string },
): Promise<WebhookEndpoint | null> {
  for (;;) {
    const entry = await kv.get<WebhookEndpoint>(keys.webhook(id));
    if (!entry.value) return null;
    const next: WebhookEndpoint = {
      ...entry.value,
      ...(change.url !== undefined ? { url: change.url } : {}),
      ...(change.events !== undefined ? { events: [...new Set(change.events)] } : {}),
      ...(change.description !== undefined ? { description: change.description } : {}),
    };
    const res = await kv.atomic().check(entry).set(entry.key, next).commit();
    if (res.ok) return next;
  }
}

/**
 * Deletes an endpoint. Its secrets are first overwritten in place (same length, so the store
 * rewrites the record where it lies): deleting alone would leave the bytes in the file's free
 * space, where a copy of the file could still find them.
 */
export async function deleteWebhook(kv: Deno.Kv, id: string): Promise<boolean> {
  let entry = await kv.get<WebhookEndpoint>(keys.webhook(id));
  for (;;) {
    if (!entry.value) return false;
    const scrubbed: WebhookEndpoint = {
      ...entry.value,
      secrets: entry.value.secrets.map((s) => ({ ...s, secret: "0".repeat(s.secret.length) })),
    };
    const res = await kv.atomic().check(entry).set(entry.key, scrubbed).commit();
    if (res.ok) break;
    entry = await kv.get<WebhookEndpoint>(keys.webhook(id));
  }
  entry = await kv.get<WebhookEndpoint>(keys.webhook(id));
  await kv.atomic().check(entry).delete(entry.key).delete(keys.webhookState(id)).commit();
  const doomed: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: keys.webhookFailurePrefix(id) })) doomed.push(e.key);
  for (let i = 0; i < doomed.length; i += 500) {
    const op = kv.atomic();
    for (const key of doomed.slice(i, i + 500)) op.delete(key);
    await op.commit();
  }
  return true;
}

/** Issues a new secret; the ones in use keep signing for ROTATION_OVERLAP_MS. */
export async function rotateWebhookSecret(
  kv: Deno.Kv,
  box: SecretBox,
  id: string,
  now: number,
): Promise<{ endpoint: WebhookEndpoint; secret: string } | null> {
  const secret = newWebhookSecret();
  const sealed = await box.seal(secret, sealContext(id));
  for (;;) {
    const entry = await kv.get<WebhookEndpoint>(keys.webhook(id));
    if (!entry.value) return null;
    const kept = entry.value.secrets
      .filter((s) => s.expiresAt === null || s.expiresAt > now)
      .map((s) => ({
        ...s,
        expiresAt: Math.min(s.expiresAt ?? Infinity, now + ROTATION_OVERLAP_MS),
      }));
    const endpoint = {
      ...entry.value,
      secrets: [...kept, { secret: sealed, createdAt: now, expiresAt: null }],
    };
    const res = await kv.atomic().check(entry).set(entry.key, endpoint).commit();
    if (res.ok) return { endpoint, secret };
  }
}

export async function getWebhookState(
  kv: Deno.Kv,
  id: string,
): Promise<Deno.KvEntryMaybe<WebhookState>> {
  return await kv.get<WebhookState>(keys.webhookState(id));
}

/**
 * Moves the endpoint's cursor back to `after` (never forward, which would skip events still
 * owed) and clears its retry state, so delivery starts again at once.
 */
export async function replayWebhook(
  kv: Deno.Kv,
  id: string,
  after: string,
): Promise<WebhookState | null> {
  for (;;) {
    const entry = await getWebhookState(kv, id);
    if (!entry.value) return null;
    const state: WebhookState = {
      ...entry.value,
      after: after < entry.value.after ? after : entry.value.after,
      attempts: 0,
      streak: 0,
      nextAttemptAt: 0,
      failingSince: null,
    };
    const res = await kv.atomic().check(entry).set(entry.key, state).commit();
    if (res.ok) return state;
  }
}

/** Adds a state update (checked against the versionstamp read) and failures to a commit. */
export function webhookStateChange(
  id: string,
  read: string | null,
  state: WebhookState,
  failures: readonly WebhookFailure[],
  keepFailuresMs: number,
) {
  return {
    apply(op: Deno.AtomicOperation) {
      op.check({ key: keys.webhookState(id), versionstamp: read });
      op.set(keys.webhookState(id), state);
      for (const f of failures) {
        op.set(keys.webhookFailure(id, f.eventId), f, { expireIn: keepFailuresMs });
      }
    },
  };
}

export async function listWebhookFailures(
  kv: Deno.Kv,
  id: string,
  limit: number,
): Promise<WebhookFailure[]> {
  const out: WebhookFailure[] = [];
  const iter = kv.list<WebhookFailure>({ prefix: keys.webhookFailurePrefix(id) }, { limit });
  for await (const e of iter) out.push(e.value);
  return out;
}

/** Seals the secrets of endpoints stored before encryption; returns how many were sealed. */
export async function sealWebhookSecrets(kv: Deno.Kv, box: SecretBox): Promise<number> {
  let sealed = 0;
  for await (const listed of kv.list<WebhookEndpoint>({ prefix: keys.webhookPrefix() })) {
    for (let entry = listed; entry.value;) {
      const plain = entry.value.secrets.filter((s) => !SecretBox.isSealed(s.secret)).length;
      if (plain === 0) break;
      const secrets = await Promise.all(
        entry.value.secrets.map(async (s) =>
          SecretBox.isSealed(s.secret)
            ? s
            : { ...s, secret: await box.seal(s.secret, sealContext(entry.value.id)) }
        ),
      );
      const res = await kv.atomic().check(entry).set(entry.key, { ...entry.value, secrets })
        .commit();
      if (res.ok) {
        sealed += plain;
        break;
      }
      entry = await kv.get<WebhookEndpoint>(entry.key) as Deno.KvEntry<WebhookEndpoint>;
    }
  }
  return sealed;
}
