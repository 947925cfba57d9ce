/**
 * Every KV key family Postern writes. No other module builds keys by hand.
 *
 * | key                                   | value            | written by                 |
 * |---------------------------------------|------------------|----------------------------|
 * | ["msg", id]                           | MessageRecord    | intake                     |
 * | ["body", id, n]                       | Uint8Array ≤63000| intake (chunk n of body; a small body of a message with one due entry rides in it instead) |
 * | ["staged", id]                        | {createdAt}      | intake, before a large body's chunks; removed by its commit |
 * | ["rcpt", id, idx]                     | RecipientRow     | intake, destination actor  |
 * | ["due", domain, dueAt, id, idx]       | {rcpts, body?, prefix?} | intake, site actor (filed per recipient domain; a site actor works all its domains; a body that rides here brings the message's DKIM prefix when it fills its page) |
 * | ["queue", domain]                     | {touchedAt}      | intake (destination has work; a node rewrites it at most every 5 s) |
 * | ["ev", msgId, eventId]                | MessageEvent     | an event no record of its commit lists (older stores: every event) |
 * | ["cred", id]                          | Credential       | credentials                |
 * | ["cred_user", username]               | id               | credentials                |
 * | ["cred_day", credId, "YYYY-MM-DD"]    | Deno.KvU64       | intake, in the message commit: messages accepted that UTC day (daily_quota) |
 * | ["account", id]                       | Account          | accounts; "default" at start-up |
 * | ["account_name", lower(name)]         | id               | accounts (names are unique) |
 * | ["domain", id]                        | SendingDomain    | domains (holds DKIM private keys: a secret) |
 * | ["domain_name", name]                 | id               | domains (one account owns a domain name) |
 * | ["domain_claim", id]                  | DomainClaim      | domains, with each write of ["domain", id]: who holds it, read at every MAIL FROM |
 * | ["lease", "dest", domain]             | Lease            | (before sites; no longer written) |
 * | ["lease", "site", site]               | Lease            | site actor (one node shapes a site) |
 * | ["site_ctl", site]                    | SiteControl      | queue API: an operator's suspension of a site |
 * | ["supp", account, address]            | Suppression      | suppressions API; attempt commit (hard bounce, expiry streak) |
 * | ["supp_streak", account, address]     | {count, lastAt}  | attempt commit: expiries in a row; deleted by a delivery (when a node's cache knows of it) |
 * | ["meta", "supp_gen"]                  | Deno.KvU64       | summed with every suppression change: nodes reload their cache |
 * | ["dsn", msgId, dsnId]                 | DsnRequest       | attempt commit (a permanent failure); deleted by the DSN's own message commit |
 * | ["warmup", source, site, utcDay]      | Deno.KvU64       | attempt commit: sends from a warming source to a site that day |
 * | ["meta", "admin_token"]               | {hash}           | start-up                   |
 * | ["evlog", account, eventId]           | MessageEvent     | the commit of the change: the account's event log, read by cursor; its id is listed in the message record or a row (`events`) |
 * | ["idem", account, key]                | {id, at, fingerprint?} | message commit (expires after 24 h) |
 * | ["idx_time", account, msgId]          | true             | (older stores: search by time; now the walk of ["msg", id]) |
 * | ["idx_from", account, from, msgId]    | true             | message commit: search by sender (lower-cased) |
 * | ["idx_rcpt", account, rcpt, msgId]    | true             | message commit: search by recipient (lower-cased) |
 * | ["idx_tag", account, tag, msgId]      | true             | message commit: search by tag |
 * | ["idx_cred", account, credId, msgId]  | true             | message commit: search by the credential that submitted it |
 * | ["stat", account, hourMs, dim, value, type] | Deno.KvU64 | sum in the event's commit; dim "all" (value ""), "domain", "tag" |
 * | ["webhook", id]                       | WebhookEndpoint  | webhooks API (signing secrets sealed)    |
 * | ["webhook_state", id]                 | WebhookState     | webhook actor (cursor, retries); replay API |
 * | ["webhook_failed", id, eventId]       | WebhookFailure   | webhook actor: an event given up after its retries |
 * | ["lease", "webhook", id]              | Lease            | webhook actor               |
 * | ["meta", "verp_key"]                  | {key}            | start-up: HMAC key of VERP return paths (sealed)   |
 * | ["mta_sts", domain]                   | CachedStsPolicy  | MTA-STS fetch: a domain's policy until its max_age ends |
 * | ["tlsrpt", day, domain, policy]       | TlsReportPolicy  | site connect: the policy a day's sessions were held to |
 * | ["tlsrpt_n", day, domain, policy, result, mx] | Deno.KvU64 | site connect: sessions per result ("success" or an RFC 8460 result type) |
 * | ["tlsrpt_sent", day, domain]          | {at, to}         | daily TLS report sender: the day's report went out |
 * | ["hold", msgId]                       | HoldRecord       | message commit of a held message; deleted by its release, drop or expiry |
 * | ["cstrike", credId, id]               | {msgId}          | content gate: a message rejected or held (expires after the abuse brake's window) |
 * | ["node", nodeId]                      | NodeBeat         | every node's heartbeat (expireIn: it goes with its node) |
 * | ["meta", "secret_key_id"]             | {id}             | start-up: which key seals the store's secrets (every node must have it) |
 * | ["win", scope, id, windowMs, index]   | Deno.KvU64       | shared limits: events of `id` in one fixed window (rate_limit, failed logins) |
 * | ["auth_lock", scope, kind, key]       | {until}          | a failed-login lockout every node honours (expireIn) |
 * | ["dash_session", sha256(token)]       | DashboardSession | dashboard sign-in (expires with the session; deleted by sign-out) |
 *
 * Event ids and message ids are time-ordered, so every family ending in one is also a time range.
 * MessageRecord, RecipientRow and MessageEvent values are stored in a short form and read back
 * whole (records.ts, events.ts): read them through those modules, not straight from KV.
 */

export type Key = Deno.KvKey;

export const keys = {
  message: (id: string): Key => ["msg", id],
  messagePrefix: (): Key => ["msg"],
  body: (id: string, n: number): Key => ["body", id, n],
  bodyPrefix: (id: string): Key => ["body", id],
  staged: (id: string): Key => ["staged", id],
  stagedPrefix: (): Key => ["staged"],
  recipient: (id: string, idx: number): Key => ["rcpt", id, idx],
  recipientPrefix: (id: string): Key => ["rcpt", id],
  due: (domain: string, dueAt: number, id: string, idx: number): Key => [
    "due",
    domain,
    dueAt,
    id,
    idx,
  ],
  duePrefix: (domain: string): Key => ["due", domain],
  dueAllPrefix: (): Key => ["due"],
  queue: (domain: string): Key => ["queue", domain],
  queuePrefix: (): Key => ["queue"],
  event: (msgId: string, eventId: string): Key => ["ev", msgId, eventId],
  eventPrefix: (msgId: string): Key => ["ev", msgId],
  credential: (id: string): Key => ["cred", id],
  credentialPrefix: (): Key => ["cred"],
  credentialByUser: (username: string): Key => ["cred_user", username],
  credentialDay: (credentialId: string, day: string): Key => ["cred_day", credentialId, day],
  account: (id: string): Key => ["account", id],
  accountPrefix: (): Key => ["account"],
  accountByName: (name: string): Key => ["account_name", name.toLowerCase()],
  domain: (id: string): Key => ["domain", id],
  domainPrefix: (): Key => ["domain"],
  domainByName: (name: string): Key => ["domain_name", name],
  domainClaim: (id: string): Key => ["domain_claim", id],
  destinationLease: (domain: string): Key => ["lease", "dest", domain],
  siteLease: (site: string): Key => ["lease", "site", site],
  siteLeasePrefix: (): Key => ["lease", "site"],
  siteControl: (site: string): Key => ["site_ctl", site],
  suppression: (account: string, address: string): Key => ["supp", account, address],
  suppressionPrefix: (account?: string): Key =>
    account === undefined ? ["supp"] : ["supp", account],
  suppressionStreak: (account: string, address: string): Key => ["supp_streak", account, address],
  suppressionStreakPrefix: (): Key => ["supp_streak"],
  suppressionGeneration: (): Key => ["meta", "supp_gen"],
  dsnRequest: (msgId: string, dsnId: string): Key => ["dsn", msgId, dsnId],
  dsnRequestPrefix: (): Key => ["dsn"],
  warmupCount: (source: string, site: string, day: number): Key => ["warmup", source, site, day],
  adminToken: (): Key => ["meta", "admin_token"],
  accountEvent: (account: string, eventId: string): Key => ["evlog", account, eventId],
  accountEventPrefix: (account: string): Key => ["evlog", account],
  idempotency: (account: string, key: string): Key => ["idem", account, key],
  indexTime: (account: string, msgId: string): Key => ["idx_time", account, msgId],
  indexFrom: (account: string, from: string, msgId: string): Key => [
    "idx_from",
    account,
    from,
    msgId,
  ],
  indexRecipient: (account: string, rcpt: string, msgId: string): Key => [
    "idx_rcpt",
    account,
    rcpt,
    msgId,
  ],
  indexTag: (account: string, tag: string, msgId: string): Key => ["idx_tag", account, tag, msgId],
  indexCredential: (account: string, credentialId: string, msgId: string): Key => [
    "idx_cred",
    account,
    credentialId,
    msgId,
  ],
  stat: (account: string, hourMs: number, dim: string, value: string, type: string): Key => [
    "stat",
    account,
    hourMs,
    dim,
    value,
    type,
  ],
  statPrefix: (account: string): Key => ["stat", account],
  webhook: (id: string): Key => ["webhook", id],
  webhookPrefix: (): Key => ["webhook"],
  webhookState: (id: string): Key => ["webhook_state", id],
  webhookFailure: (id: string, eventId: string): Key => ["webhook_failed", id, eventId],
  webhookFailurePrefix: (id: string): Key => ["webhook_failed", id],
  webhookLease: (id: string): Key => ["lease", "webhook", id],
  verpKey: (): Key => ["meta", "verp_key"],
  mtaSts: (domain: string): Key => ["mta_sts", domain],
  tlsReportPolicy: (day: string, domain: string, policy: string): Key => [
    "tlsrpt",
    day,
    domain,
    policy,
  ],
  tlsReportPolicyPrefix: (day?: string): Key => day ? ["tlsrpt", day] : ["tlsrpt"],
  tlsReportCount: (
    day: string,
    domain: string,
    policy: string,
    result: string,
    mx: string,
  ): Key => ["tlsrpt_n", day, domain, policy, result, mx],
  tlsReportCountPrefix: (day: string, domain?: string): Key =>
    domain ? ["tlsrpt_n", day, domain] : ["tlsrpt_n", day],
  tlsReportSent: (day: string, domain: string): Key => ["tlsrpt_sent", day, domain],
  hold: (msgId: string): Key => ["hold", msgId],
  holdPrefix: (): Key => ["hold"],
  contentStrike: (credentialId: string, id: string): Key => ["cstrike", credentialId, id],
  contentStrikePrefix: (credentialId: string): Key => ["cstrike", credentialId],
  node: (id: string): Key => ["node", id],
  secretKeyId: (): Key => ["meta", "secret_key_id"],
  windowCount: (scope: string, id: string, windowMs: number, index: number): Key => [
    "win",
    scope,
    id,
    windowMs,
    index,
  ],
  windowCountPrefix: (): Key => ["win"],
  authLock: (scope: string, kind: string, key: string): Key => ["auth_lock", scope, kind, key],
  nodePrefix: (): Key => ["node"],
  dashboardSession: (tokenDigest: string): Key => ["dash_session", tokenDigest],
};

/**
 * A key as one string, the same for equal keys and different for different ones (each part with
 * its type), for maps that gather per-key counts: cheaper than JSON for the few parts a key has.
 */
export function keyId(key: Deno.KvKey): string {
  let id = "";
  for (const part of key) id += `${typeof part}:${String(part)}\u0001`;
  return id;
}
