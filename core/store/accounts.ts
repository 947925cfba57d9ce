/**
 * Accounts (tenants). Credentials, domains and messages belong to one; an API key never sees
 * another account's records. The account "default" always exists: the admin token acts on it
 * unless it names another, and trusted-network relaying is charged to it unless configured.
 *
 * @module
 */
import { keys } from "./keys.ts";
import { shortId } from "../ids.ts";
import { type ContentPolicy, DEFAULT_CONTENT_POLICY } from "../policy/content_policy.ts";

export const DEFAULT_ACCOUNT = "default";

/** What an account's senders may do, whichever credential (or the admin token) they send with. */
export interface AccountSettings {
  /**
   * Senders (MAIL FROM, From, Sender) must align with one of the account's verified domains.
   * On for accounts made through the API; off for "default", which serves the operator's own
   * trusted networks and has no domains until someone adds them.
   */
  requireVerifiedSender: boolean;
  /** IP pools every credential of the account may choose with `X-Postern-Pool`. */
  pools: string[];
}

export interface Account extends AccountSettings {
  id: string;
  name: string;
  createdAt: number;
  /** Test mode for every credential of the account (a credential may also set its own). */
  testMode?: boolean;
  /** What rspamd's score does to this account's mail; absent = DEFAULT_CONTENT_POLICY. */
  contentPolicy?: ContentPolicy;
}

export function contentPolicyOf(account: Account | null): ContentPolicy {
  return { ...DEFAULT_CONTENT_POLICY, ...account?.contentPolicy };
}

/** The settings an account made through the API starts with. */
export const NEW_ACCOUNT_SETTINGS: Readonly<AccountSettings> = {
  requireVerifiedSender: true,
  pools: [],
};

/**
 * Records written before settings existed read as the defaults: off for "default" (as it always
 * behaved), on for every other account (they were all made through the API).
 */
function withDefaults(a: Omit<Account, keyof AccountSettings> & Partial<AccountSettings>): Account {
  return {
    requireVerifiedSender: a.id !== DEFAULT_ACCOUNT,
    pools: [],
    ...a,
  };
}

/** Creates the default account on first start; harmless on every later one. */
export async function ensureDefaultAccount(kv: Deno.Kv, now = Date.now()): Promise<void> {
  const account: Account = {
    id: DEFAULT_ACCOUNT,
    name: DEFAULT_ACCOUNT,
    createdAt: now,
    requireVerifiedSender: false,
    pools: [],
  };
  await kv.atomic()
    .check({ key: keys.account(DEFAULT_ACCOUNT), versionstamp: null })
    .check({ key: keys.accountByName(DEFAULT_ACCOUNT), versionstamp: null })
    .set(keys.account(DEFAULT_ACCOUNT), account)
    .set(keys.accountByName(DEFAULT_ACCOUNT), DEFAULT_ACCOUNT)
    .commit();
}

/** A new account, or null when the name is taken (names are unique, ignoring case). */
export async function createAccount(
  kv: Deno.Kv,
  input: { name: string; settings?: Partial<AccountSettings>; testMode?: boolean; now?: number },
): Promise<Account | null> {
  const account: Account = {
    ...NEW_ACCOUNT_SETTINGS,
    ...input.settings,
    id: shortId("acc_", 16),
    name: input.name,
    createdAt: input.now ?? Date.now(),
    ...(input.testMode ? { testMode: true } : {}),
  };
  const res = await kv.atomic()
    .check({ key: keys.accountByName(account.name), versionstamp: null })
    .set(keys.account(account.id), account)
    .set(keys.accountByName(account.name), account.id)
    .commit();
  return res.ok ? account : null;
}

export async function getAccount(kv: Deno.Kv, id: string): Promise<Account | null> {
  return accountFrom((await kv.get<Account>(keys.account(id))).value);
}

/** An account as stored (by a read of its key, keys.account) with its settings' defaults. */
export function accountFrom(value: Account | null): Account | null {
  return value ? withDefaults(value) : null;
}

/** Changes an account's settings (compare-and-set, retried on a concurrent write). */
export async function updateAccount(
  kv: Deno.Kv,
  id: string,
  patch: Partial<AccountSettings> & { testMode?: boolean; contentPolicy?: Partial<ContentPolicy> },
): Promise<Account | null> {
  const { contentPolicy, ...settings } = patch;
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get<Account>(keys.account(id));
    if (!entry.value) return null;
    const current = withDefaults(entry.value);
    const next = {
      ...current,
      ...settings,
      // Content policy fields not given keep their value.
      ...(contentPolicy
        ? { contentPolicy: { ...contentPolicyOf(current), ...contentPolicy } }
        : {}),
    };
    const res = await kv.atomic().check(entry).set(keys.account(id), next).commit();
    if (res.ok) return next;
  }
  throw new Error(`Cannot update account ${id}: it kept changing under concurrent writes`);
}

export async function listAccounts(kv: Deno.Kv): Promise<Account[]> {
  const out: Account[] = [];
  for await (const e of kv.list<Account>({ prefix: keys.accountPrefix() })) {
    out.push(withDefaults(e.value));
  }
  return out.sort((a, b) => a.createdAt - b.createdAt);
}
