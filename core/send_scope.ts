/**
 * The send scope: who may send what, asked by both doors (smtp/server.ts at MAIL FROM, RCPT TO
 * and through intake at the end of DATA; http/send.ts before intake and through it) so that
 * SMTP and HTTP can never disagree. One request names what is known at that step of the
 * transaction; each check runs when its part is given:
 *
 * - the credential: still there and not revoked (re-read every transaction, see loadSendScope);
 * - `client`: the credential's `allowed_ips`;
 * - `envelopeSender` and `headers` (every From and Sender field): each domain they name is
 *   refused when another account added it (the most specific added domain that is it or a parent
 *   decides), when the account's `requireVerifiedSender` is on and no verified domain of the
 *   account covers it, or when the credential's `domains` do not cover it. More than one From or
 *   Sender field is refused outright (RFC 5322 §3.6: at most one each). The null sender `<>`
 *   names no domain; its From is still checked. Who holds a domain is read once per
 *   transaction, like the credential (see claimsOf);
 * - `headers.pool`: `X-Postern-Pool` may only name a pool granted to the credential (its `pool`,
 *   its `pools`) or to its account (`pools`);
 * - `recipients`: at most `maxRecipients` per message (POSTERN_MAX_RECIPIENTS, the same on both
 *   doors); and the credential's `daily_quota` counts recipients, so the transaction's
 *   recipients must fit in what is left of it today;
 * - `takeRate`: takes one message from the credential's `rate_limit` (once per transaction).
 *
 * A scope without a credential (the admin token, trusted networks) keeps the account's rules
 * (other accounts' domains, `requireVerifiedSender`) and may choose any pool.
 *
 * @module
 */
import { allowsAddress, type Credential, isSuspended } from "./store/credentials.ts";
import { type AccountSettings, DEFAULT_ACCOUNT } from "./store/accounts.ts";
import { readScopeRecords } from "./store/scope_records.ts";
import { type DomainClaim, domainClaims } from "./store/domains.ts";
import { asciiDomain, domainOf, MAX_DOMAIN } from "./mail/address.ts";
import { alignsWith, claimedDomains, fromHeaderDomains } from "./mail/sender_domains.ts";
import type { SenderFields } from "./mail/headers.ts";
import type { SendLimits } from "./send_limits.ts";

export interface SendScope {
  account: string;
  settings: AccountSettings;
  /** null: the admin token or a trusted network. */
  credential: Credential | null;
}

export interface ScopeRequest {
  client?: string;
  /** The reverse-path ("" for the null sender). */
  envelopeSender?: string;
  /** The message's From and Sender fields, and the pool its X-Postern-Pool field names. */
  headers?: SenderFields & { pool?: string | undefined };
  /** Recipients of this transaction (so far, over SMTP). */
  recipients?: number;
  takeRate?: boolean;
}

/** Why a sender domain is refused. */
export type SenderProblem =
  | "other_account"
  | "unverified"
  | "credential_domains"
  | "no_from"
  | "invalid"
  | "too_many";

/** What each sender problem means, for SMTP replies and HTTP errors alike. */
export const SENDER_PROBLEM_TEXT: Readonly<Record<SenderProblem, string>> = {
  credential_domains: "is not a sender domain of this credential",
  other_account: "belongs to another account",
  unverified: "is not a verified domain of this account",
  no_from: "is refused: the message needs a From address",
  invalid: "is not a domain",
  too_many: "is refused: the message names too many sender domains",
};

/** Distinct domains one message's From and Sender may name (each costs a few store reads). */
export const MAX_SENDER_DOMAINS = 50;

export type ScopeRefusal =
  | { reason: "revoked" }
  /** The abuse brake suspended the credential (core/content/gate.ts). */
  | { reason: "suspended" }
  | { reason: "client_not_allowed"; client: string }
  | { reason: "sender_not_allowed"; domain: string; why: SenderProblem }
  | { reason: "multiple_senders"; field: "From" | "Sender" }
  | { reason: "pool_not_allowed"; pool: string }
  | { reason: "too_many_recipients"; limit: number }
  | { reason: "rate" | "quota"; retryAfterMs: number };

export interface ScopeDeps {
  kv: Deno.Kv;
  /** Needed for `recipients` and `takeRate` with a credential that has limits. */
  limits?: SendLimits;
  /** Recipients one message may have (POSTERN_MAX_RECIPIENTS); checked with `recipients`. */
  maxRecipients?: number;
}

/**
 * The scope of one transaction; null when the credential is gone or revoked. Re-read for every
 * transaction, so revocation and changed scopes reach open SMTP sessions at their next MAIL FROM.
 * Given the transaction's `envelopeSender`, who holds its domain is read in the same store read
 * (the check that follows at MAIL FROM needs it).
 */
export async function loadSendScope(
  kv: Deno.Kv,
  account: string,
  credentialId: string | null,
  envelopeSender?: string,
): Promise<SendScope | null> {
  const senderDomain = envelopeSender ? checkedName(domainOf(envelopeSender)) : null;
  const read = await readScopeRecords(kv, account, credentialId, senderDomain ?? undefined);
  const credential = read.credential;
  if (credentialId !== null && (!credential || credential.revokedAt !== null)) return null;
  const settings = read.account ??
    { requireVerifiedSender: account !== DEFAULT_ACCOUNT, pools: [] };
  const scope: SendScope = {
    account,
    settings: { requireVerifiedSender: settings.requireVerifiedSender, pools: settings.pools },
    credential,
  };
  if (senderDomain && read.claims) claimsByScope.set(scope, new Map([[senderDomain, read.claims]]));
  return scope;
}

/** The one check of a transaction step against its scope; null when it may go on. */
export async function checkSendScope(
  deps: ScopeDeps,
  scope: SendScope | null,
  request: ScopeRequest,
): Promise<ScopeRefusal | null> {
  if (scope === null) return { reason: "revoked" };
  const c = scope.credential;
  if (c && isSuspended(c)) return { reason: "suspended" };
  if (request.client !== undefined && c && !allowsAddress(c, request.client)) {
    return { reason: "client_not_allowed", client: request.client };
  }
  if (request.envelopeSender) {
    const problem = await senderDomainProblem(deps.kv, scope, domainOf(request.envelopeSender));
    if (problem) return problem;
  }
  if (request.headers) {
    const problem = await headerProblem(deps.kv, scope, request.headers);
    if (problem) return problem;
  }
  const max = deps.maxRecipients;
  if (max !== undefined && request.recipients !== undefined && request.recipients > max) {
    return { reason: "too_many_recipients", limit: max };
  }
  if (c && deps.limits && request.recipients !== undefined) {
    const quota = await deps.limits.quota(c, request.recipients);
    if (!quota.ok) return { reason: quota.reason, retryAfterMs: quota.retryAfterMs };
  }
  if (c && deps.limits && request.takeRate) {
    const rate = await deps.limits.take(c);
    if (!rate.ok) return { reason: rate.reason, retryAfterMs: rate.retryAfterMs };
  }
  return null;
}

/** Whether the scope limits senders to a list of domains at all. */
function limitsSenders(scope: SendScope): boolean {
  return scope.settings.requireVerifiedSender || (scope.credential?.domains.length ?? 0) > 0;
}

async function headerProblem(
  kv: Deno.Kv,
  scope: SendScope,
  headers: SenderFields & { pool?: string | undefined },
): Promise<ScopeRefusal | null> {
  if (headers.from.length > 1) return { reason: "multiple_senders", field: "From" };
  if (headers.sender.length > 1) return { reason: "multiple_senders", field: "Sender" };
  const from = headers.from[0] ?? "";
  if (limitsSenders(scope) && fromHeaderDomains(from).length === 0) {
    return { reason: "sender_not_allowed", domain: "(no From: address)", why: "no_from" };
  }
  const domains = new Set([...headers.from, ...headers.sender].flatMap(claimedDomains));
  if (domains.size > MAX_SENDER_DOMAINS) {
    return { reason: "sender_not_allowed", domain: `(${domains.size} domains)`, why: "too_many" };
  }
  for (const domain of domains) {
    const problem = await senderDomainProblem(kv, scope, domain);
    if (problem) return problem;
  }
  const c = scope.credential;
  if (headers.pool !== undefined && c) {
    const granted = [...c.pools, ...scope.settings.pools, ...(c.pool ? [c.pool] : [])];
    if (!granted.includes(headers.pool)) return { reason: "pool_not_allowed", pool: headers.pool };
  }
  return null;
}

async function senderDomainProblem(
  kv: Deno.Kv,
  scope: SendScope,
  domain: string,
): Promise<ScopeRefusal | null> {
  const name = checkedName(domain);
  const refuse = (why: SenderProblem): ScopeRefusal => ({
    reason: "sender_not_allowed",
    domain,
    why,
  });
  if (name === null) return refuse("invalid");
  const claims = await claimsOf(kv, scope, name);
  if (claims[0] && claims[0].account !== scope.account) return refuse("other_account");
  if (
    scope.settings.requireVerifiedSender &&
    !claims.some((d) => d.account === scope.account && d.verified)
  ) {
    return refuse("unverified");
  }
  const c = scope.credential;
  if (c && c.domains.length > 0 && !alignsWith(name, c.domains)) {
    return refuse("credential_domains");
  }
  return null;
}

/** A sender domain as its claims are looked up (A-labels), or null when it is too long. */
function checkedName(domain: string): string | null {
  const name = asciiDomain(domain);
  return name.length > MAX_DOMAIN ? null : name;
}

/**
 * Who holds each domain a transaction's scope has asked about. A scope lives for one transaction
 * (or one HTTP request), loaded afresh at each MAIL FROM like the credential it holds, so a
 * domain is read once per transaction: its envelope sender and its From are most often the
 * same domain, which cost a second read of the same keys for every message.
 */
const claimsByScope = new WeakMap<SendScope, Map<string, DomainClaim[]>>();

async function claimsOf(kv: Deno.Kv, scope: SendScope, name: string): Promise<DomainClaim[]> {
  let known = claimsByScope.get(scope);
  if (!known) claimsByScope.set(scope, known = new Map());
  let claims = known.get(name);
  if (!claims) known.set(name, claims = await domainClaims(kv, name));
  return claims;
}
