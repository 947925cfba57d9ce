/**
 * Webhook actors: one per endpoint, each tailing its account's event log from a cursor kept in
 * KV, so a restart, a crash or another node taking over resumes where delivery stood. An actor
 * POSTs one event at a time, in log order, signed (core/events/signing.ts), and moves its cursor
 * only past events the endpoint accepted or that were given up (core/policy/webhook_retry.ts):
 * delivery is at least once. Each actor runs on its own; a slow or dead endpoint holds up
 * nothing but itself, and mail delivery never waits for webhooks. A lease per endpoint keeps two
 * nodes from delivering the same endpoint's events.
 */
import type http from "node:http";
import httpModule from "node:http";
import httpsModule from "node:https";
import type { Committer } from "../core/store/committer.ts";
import type { Logger } from "../core/log.ts";
import type { Resolver } from "../core/mail/mx.ts";
import type { MessageEvent, MessageRecord } from "../core/model.ts";
import { releaseWebhookLease, tryWebhookLease } from "../core/store/leases.ts";
import { listAccountEvents } from "../core/store/events.ts";
import { loadMessage } from "../core/store/queue.ts";
import {
  getWebhook,
  getWebhookState,
  initialState,
  listWebhooks,
  liveSecrets,
  type WebhookEndpoint,
  type WebhookFailure,
  type WebhookState,
  webhookStateChange,
} from "../core/store/webhooks.ts";
import { afterFailure, isPastDeadline } from "../core/policy/webhook_retry.ts";
import type { SecretBox } from "../core/auth/secret_box.ts";
import { checkHttpTarget, type TargetCheck } from "../core/net/public_address.ts";
import { eventView } from "../core/events/vocabulary.ts";
import { webhookHeaders } from "../core/events/signing.ts";
import { idTime, idTimePrefix } from "../core/ids.ts";
import { metrics } from "../core/metrics.ts";
import { postWebhook, type WebhookPostOutcome } from "../delivery/webhook_post.ts";
import {
  LEASE_RETRY_MIN_MS,
  WEBHOOK_LEASE_TTL_MS,
  WEBHOOK_MESSAGE_CACHE,
  WEBHOOK_PAGE,
  WEBHOOK_TARGET_TTL_MS,
} from "../core/policy/actor_tuning.ts";
import { every, LeaseKeeper, stopAll, systemTimers, type Timers, Wakeup } from "./actor_loop.ts";

export interface WebhookDeps {
  kv: Deno.Kv;
  committer: Committer;
  log: Logger;
  nodeId: string;
  /** Delay before each attempt of an event (core/policy/webhook_retry.ts). */
  schedule: readonly number[];
  timeoutMs: number;
  /** How far short of now the event log is read (core/store/events.ts). */
  settleMs: number;
  pollIntervalMs: number;
  /** How long given-up events stay listed. */
  retentionMs: number;
  resolver: Resolver;
  /** Networks an operator allowed although not public (POSTERN_WEBHOOK_ALLOW). */
  allowed(address: string): boolean;
  /** Opens the signing secrets, stored sealed. */
  secretBox: SecretBox;
  now(): number;
  /** The timers the actor waits on (tests drive them). @default the system's */
  timers?: Timers;
}

export class WebhookActor {
  readonly id: string;
  /** Events read but not yet delivered, and the time of the oldest: for metrics. */
  backlog = 0;
  oldestPendingAt: number | null = null;
  #deps: WebhookDeps;
  #stopping = false;
  #wakeup: Wakeup;
  #lease: LeaseKeeper;
  #done: Promise<void>;
  #target: { url: string; check: TargetCheck; until: number } | null = null;
  #agents: { http: http.Agent; https: http.Agent };
  #messages = new Map<string, Pick<MessageRecord, "tags" | "metadata"> | null>();

  constructor(id: string, deps: WebhookDeps, onExit: () => void) {
    this.id = id;
    this.#deps = deps;
    this.#wakeup = new Wakeup(deps.timers ?? systemTimers);
    this.#lease = new LeaseKeeper({
      ttlMs: WEBHOOK_LEASE_TTL_MS,
      retryMinMs: LEASE_RETRY_MIN_MS,
      now: () => deps.now(),
      take: (at) => tryWebhookLease(deps.kv, id, deps.nodeId, WEBHOOK_LEASE_TTL_MS, at),
      release: () => releaseWebhookLease(deps.kv, id, deps.nodeId),
    });
    // One kept-alive connection per endpoint: events go one at a time anyway.
    this.#agents = {
      http: new httpModule.Agent({ keepAlive: true, maxSockets: 1 }),
      https: new httpsModule.Agent({ keepAlive: true, maxSockets: 1 }),
    };
    this.#done = this.#run().catch((err) => {
      deps.log.error("webhook.actor_crashed", { webhook: id, err });
    }).finally(() => {
      this.#agents.http.destroy();
      this.#agents.https.destroy();
      onExit();
    });
  }

  wake() {
    this.#wakeup.wake();
  }

  stop(): Promise<void> {
    this.#stopping = true;
    this.wake();
    // A POST to a receiver that does not answer would hold the stop for the whole webhook
    // timeout: cut it. Its event was not recorded delivered, so it is sent again after the
    // restart (webhooks are at least once).
    this.#agents.http.destroy();
    this.#agents.https.destroy();
    return this.#done;
  }

  #sleep(ms: number): Promise<void> {
    return this.#wakeup.sleep(ms);
  }

  async #run() {
    const { kv, now, settleMs, pollIntervalMs } = this.#deps;
    try {
      while (!this.#stopping) {
        try {
          if (!(await this.#lease.hold())) {
            this.backlog = 0;
            this.oldestPendingAt = null;
            await this.#sleep(WEBHOOK_LEASE_TTL_MS / 3);
            continue;
          }
          const endpoint = await getWebhook(kv, this.id);
          if (!endpoint) return; // deleted
          const entry = await getWebhookState(kv, this.id);
          const state = entry.value ?? initialState(idTimePrefix(endpoint.createdAt));
          const wait = state.nextAttemptAt - now();
          if (wait > 0) {
            await this.#sleep(Math.min(wait, pollIntervalMs));
            continue;
          }
          const page = await listAccountEvents(kv, endpoint.account, {
            after: state.after,
            until: now() - settleMs,
            limit: WEBHOOK_PAGE,
            types: new Set(endpoint.events),
          });
          this.backlog = page.events.length;
          this.oldestPendingAt = page.events[0]?.at ?? null;
          if (page.last === null) {
            await this.#sleep(pollIntervalMs);
            continue;
          }
          const { next, failures, complete } = await this.#deliverPage(
            endpoint,
            state,
            page.events,
          );
          if (complete) next.after = page.last;
          const stamp = await this.#deps.committer.commit(
            webhookStateChange(this.id, entry.versionstamp, next, failures, this.#deps.retentionMs),
          );
          if (stamp === null) {
            // Replayed (or taken over) meanwhile: read the state again.
            this.#deps.log.info("webhook.state_moved", { webhook: this.id });
            continue;
          }
          if (!(complete && page.more)) await this.#sleep(complete ? pollIntervalMs : 0);
        } catch (err) {
          // A store that is unreachable or refuses must not end the endpoint: log, pause, go on.
          this.#deps.log.error("webhook.step_failed", { webhook: this.id, err });
          await this.#sleep(pollIntervalMs);
        }
      }
    } finally {
      this.backlog = 0;
      this.oldestPendingAt = null;
      await this.#lease.release().catch(() => {});
    }
  }

  /** Delivers events in order until one has to wait; returns the state to record. */
  async #deliverPage(
    endpoint: WebhookEndpoint,
    state: WebhookState,
    events: readonly MessageEvent[],
  ): Promise<{ next: WebhookState; failures: WebhookFailure[]; complete: boolean }> {
    const { schedule, log, now, settleMs } = this.#deps;
    const next: WebhookState = { ...state };
    const failures: WebhookFailure[] = [];
    let failedThisPass = false;
    for (const ev of events) {
      if (this.#stopping) return { next, failures, complete: false };
      const visibleAt = (idTime(ev.id) ?? ev.at) + settleMs;
      if (failedThisPass) {
        // The endpoint just failed: events already past their deadline are given up now
        // without an attempt; the next live one waits for the paced retry.
        if (!isPastDeadline(schedule, visibleAt, now())) return { next, failures, complete: false };
        failures.push(
          failure(ev, 0, "given up without an attempt: the endpoint kept failing", now()),
        );
        next.after = ev.id;
        next.givenUp++;
        metrics.webhookDeliveries.inc({ result: "given_up" });
        continue;
      }
      const outcome = await this.#post(endpoint, ev);
      // Cut short by the stop: not the endpoint's failure, so neither counted nor logged as one.
      if (!outcome.ok && this.#stopping) return { next, failures, complete: false };
      if (outcome.ok) {
        metrics.webhookDeliveries.inc({ result: "success" });
        Object.assign(next, {
          after: ev.id,
          attempts: 0,
          streak: 0,
          nextAttemptAt: 0,
          failingSince: null,
          lastError: null,
          lastSuccessAt: now(),
          delivered: next.delivered + 1,
        });
        this.backlog = Math.max(0, this.backlog - 1);
        continue;
      }
      metrics.webhookDeliveries.inc({ result: "failure" });
      next.attempts++;
      next.streak++;
      next.failingSince ??= now();
      next.lastError = outcome.error;
      const decision = afterFailure({
        schedule,
        attempts: next.attempts,
        streak: next.streak,
        visibleAt,
        now: now(),
      });
      log.info("webhook.attempt_failed", {
        webhook: endpoint.id,
        event_id: ev.id,
        attempts: next.attempts,
        error: outcome.error,
        gave_up: decision.kind === "give_up",
      });
      if (decision.kind === "retry") {
        next.nextAttemptAt = decision.at;
        return { next, failures, complete: false };
      }
      metrics.webhookDeliveries.inc({ result: "given_up" });
      failures.push(failure(ev, next.attempts, outcome.error, now()));
      next.after = ev.id;
      next.attempts = 0;
      next.givenUp++;
      next.nextAttemptAt = decision.nextAttemptAt;
      failedThisPass = true;
    }
    // Past the last event of the page; a paced wait, if any, applies to the next one.
    return { next, failures, complete: !failedThisPass || next.nextAttemptAt <= now() };
  }

  async #post(endpoint: WebhookEndpoint, ev: MessageEvent): Promise<WebhookPostOutcome> {
    const { now, timeoutMs, secretBox } = this.#deps;
    const url = new URL(endpoint.url);
    const target = await this.#checkTarget(url);
    if (!target.ok) return { ok: false, status: null, error: `refused: ${target.reason}` };
    const body = JSON.stringify({
      type: ev.type,
      timestamp: new Date(ev.at).toISOString(),
      data: eventView(ev, await this.#message(ev.msgId)),
    });
    return await postWebhook({
      url,
      address: target.address,
      family: target.family,
      headers: webhookHeaders(await liveSecrets(endpoint, now(), secretBox), ev.id, now(), body),
      body,
      timeoutMs,
      agent: url.protocol === "https:" ? this.#agents.https : this.#agents.http,
    });
  }

  /** The URL's host, checked at send time too: a name may have moved to a private address. */
  async #checkTarget(url: URL): Promise<TargetCheck> {
    const now = this.#deps.now();
    if (this.#target && this.#target.url === url.href && this.#target.until > now) {
      return this.#target.check;
    }
    const check = await checkHttpTarget(url, this.#deps);
    this.#target = { url: url.href, check, until: now + WEBHOOK_TARGET_TTL_MS };
    return check;
  }

  async #message(msgId: string) {
    if (this.#messages.has(msgId)) return this.#messages.get(msgId)!;
    const msg = await loadMessage(this.#deps.kv, msgId);
    const slim = msg
      ? {
        ...(msg.tags ? { tags: msg.tags } : {}),
        ...(msg.metadata ? { metadata: msg.metadata } : {}),
      }
      : null;
    this.#messages.set(msgId, slim);
    if (this.#messages.size > WEBHOOK_MESSAGE_CACHE) {
      this.#messages.delete(this.#messages.keys().next().value!);
    }
    return slim;
  }
}

function failure(
  ev: MessageEvent,
  attempts: number,
  lastError: string,
  at: number,
): WebhookFailure {
  return { eventId: ev.id, type: ev.type, msgId: ev.msgId, attempts, lastError, at };
}

export interface Webhooks {
  stop(graceMs: number): Promise<void>;
  readonly actors: ReadonlyMap<string, WebhookActor>;
}

/** Keeps one actor per endpoint: new endpoints are found by polling the endpoint list. */
export function startWebhooks(deps: WebhookDeps): Webhooks {
  const actors = new Map<string, WebhookActor>();
  let stopped = false;

  async function scan() {
    try {
      const endpoints = await listWebhooks(deps.kv);
      for (const endpoint of endpoints) {
        if (stopped || actors.has(endpoint.id)) continue;
        const actor: WebhookActor = new WebhookActor(endpoint.id, deps, () => {
          if (actors.get(endpoint.id) === actor) actors.delete(endpoint.id);
        });
        actors.set(endpoint.id, actor);
      }
    } catch (err) {
      deps.log.error("webhook.scan_failed", { err });
    }
    let backlog = 0;
    let oldest: number | null = null;
    for (const actor of actors.values()) {
      backlog += actor.backlog;
      if (actor.oldestPendingAt !== null) {
        oldest = Math.min(oldest ?? Infinity, actor.oldestPendingAt);
      }
    }
    metrics.webhookBacklog.set(backlog);
    metrics.webhookLag.set(oldest === null ? 0 : Math.max(0, (deps.now() - oldest) / 1000));
  }

  const timers = deps.timers ?? systemTimers;
  const stopScanning = every(timers, Math.min(deps.pollIntervalMs, 1_000), scan);

  return {
    actors,
    async stop(graceMs: number) {
      stopped = true;
      stopScanning();
      await stopAll(timers, actors.values(), graceMs);
    },
  };
}
