/**
 * A small in-process metrics registry rendered as Prometheus text (exposition format 0.0.4).
 * smtp/, actors/ and http/ bump counters here; `GET /metrics` renders them. Labels carry only
 * bounded vocabularies (an outcome, a protocol): never an address, a secret or an account name.
 */

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  // Most counters have no labels: no pairs built for them at every count.
  let none = true;
  for (const _ in labels) {
    none = false;
    break;
  }
  if (none) return "";
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

interface Metric {
  name: string;
  help: string;
  render(): string[];
}

/** A value per label set; counters and gauges differ only in how they may move. */
abstract class LabelledValues implements Metric {
  #values = new Map<string, { labels: Labels; value: number }>();
  protected abstract readonly type: "counter" | "gauge";
  constructor(readonly name: string, readonly help: string) {}

  protected addTo(labels: Labels, n: number) {
    const id = labelText(labels);
    const cur = this.#values.get(id);
    if (cur) cur.value += n;
    else this.#values.set(id, { labels, value: n });
  }

  protected setTo(labels: Labels, value: number) {
    this.#values.set(labelText(labels), { labels, value });
  }

  value(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} ${this.type}`,
      ...[...this.#values.values()].map((v) => `${this.name}${labelText(v.labels)} ${v.value}`),
    ];
  }
}

export class Counter extends LabelledValues {
  protected readonly type = "counter";

  inc(labels: Labels = {}, n = 1) {
    this.addTo(labels, n);
  }
}

export class Gauge extends LabelledValues {
  protected readonly type = "gauge";

  set(value: number, labels: Labels = {}) {
    this.setTo(labels, value);
  }

  add(n: number, labels: Labels = {}) {
    this.addTo(labels, n);
  }
}

export class Histogram implements Metric {
  #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.#counts = buckets.map(() => 0);
  }

  observe(value: number) {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.#counts[i]!++;
  }

  get count(): number {
    return this.#count;
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} histogram`,
      ...this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.#counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.#count}`,
      `${this.name}_sum ${this.#sum}`,
      `${this.name}_count ${this.#count}`,
    ];
  }
}

/** The process's metrics. Names follow Prometheus conventions (base units, `_total`). */
export const metrics = {
  smtpSessions: new Counter("postern_smtp_sessions_total", "SMTP sessions opened"),
  authFailures: new Counter(
    "postern_auth_failures_total",
    "Failed authentications by protocol (smtp, http)",
  ),
  secretDerivations: new Counter(
    "postern_secret_derivations_total",
    "scrypt derivations (secret hashing and verification; each costs tens of ms and 32 MiB)",
  ),
  limitRefusals: new Counter(
    "postern_limit_refusals_total",
    "Sessions, commands and messages refused by an abuse limit, by limit",
  ),
  inFlowPauses: new Counter(
    "postern_in_flow_pauses_total",
    "Transactions whose MAIL FROM waited for deliveries to catch up (POSTERN_IN_FLOW_DELAY), by " +
      "what ended the wait (delivery, delay)",
  ),
  inFlowWaiting: new Gauge(
    "postern_in_flow_waiting",
    "Transactions whose MAIL FROM is waiting now for deliveries to catch up",
  ),
  messagesAccepted: new Counter(
    "postern_messages_accepted_total",
    "Messages committed to the queue, by submission path (smtp, http)",
  ),
  deliveries: new Counter(
    "postern_deliveries_total",
    "Recipient delivery outcomes by event type (delivered, deferred, bounced, expired, ...)",
  ),
  attemptSeconds: new Histogram(
    "postern_delivery_attempt_seconds",
    "Duration of one outbound SMTP transaction",
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  ),
  queueDepth: new Gauge(
    "postern_queue_depth",
    "Due entries in the queue (one per message and destination), counted at scrape",
  ),
  webhookDeliveries: new Counter(
    "postern_webhook_deliveries_total",
    "Webhook POST attempts by result (success, failure, given_up)",
  ),
  webhookBacklog: new Gauge(
    "postern_webhook_backlog_events",
    "Events read from the log but not yet delivered, over all endpoints this node serves",
  ),
  contentScans: new Counter(
    "postern_content_scans_total",
    "Messages scanned by rspamd at intake, by result (accept, hold, reject, error)",
  ),
  contentScanSeconds: new Histogram(
    "postern_content_scan_seconds",
    "Duration of one rspamd scan at intake (the message streamed and the verdict read)",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  ),
  holdOutcomes: new Counter(
    "postern_holds_total",
    "Held messages settled, by outcome (released, dropped, expired)",
  ),
  credentialsSuspended: new Counter(
    "postern_credentials_suspended_total",
    "Credentials the abuse brake suspended (too many messages rejected or held in its window)",
  ),
  kvCommits: new Counter(
    "postern_kv_commits_total",
    "KV commits that landed (atomic operations, and single sets and deletes)",
  ),
  kvMutations: new Counter(
    "postern_kv_mutations_total",
    "KV mutations (set, delete, sum, min, max) in the commits that landed",
  ),
  kvCheckpoints: new Counter(
    "postern_kv_checkpoints_total",
    "WAL checkpoints of the local store run by the checkpoint pacer (busy: some frames had to wait)",
  ),
  kvCheckpointFrames: new Counter(
    "postern_kv_checkpoint_frames_total",
    "WAL frames those checkpoints copied into the store's file",
  ),
  webhookLag: new Gauge(
    "postern_webhook_lag_seconds",
    "Age of the oldest undelivered event over all endpoints this node serves",
  ),
};

export function renderMetrics(): string {
  return Object.values(metrics).flatMap((m: Metric) => m.render()).join("\n") + "\n";
}
