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

export interface Account {
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

/** Creates the default account on first start; harmless on every later one. */
export async function ensureDefaultAccount(kv: Deno.Kv, now = Date.now()): Promise<void> {
  const account: Account = { id: DEFAULT_ACCOUNT, name: DEFAULT_ACCOUNT, createdAt: now };
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
  input: { name: string; testMode?: boolean; now?: number },
): Promise<Account | null> {
  const account: Account = {
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
  return (await kv.get<Account>(keys.account(id))).value;
}

export async function listAccounts(kv: Deno.Kv): Promise<Account[]> {
  const out: Account[] = [];
  for await (const e of kv.list<Account>({ prefix: keys.accountPrefix() })) out.push(e.value);
  return out.sort((a, b) => a.createdAt - b.createdAt);
}

/** Sets the account's default test mode; null when there is no such account. */
/** Applies `change` to the stored account with a compare-and-set; null when there is none. */
async function mutateAccount(
  kv: Deno.Kv,
  id: string,
  change: (a: Account) => Account,
): Promise<Account | null> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get<Account>(keys.account(id));
    if (!entry.value) return null;
    const next = change(entry.value);
    const res = await kv.atomic().check(entry).set(keys.account(id), next).commit();
    if (res.ok) return next;
  }
  throw new Error(`Cannot update account ${id}: it kept changing under concurrent writes`);
}

export function setAccountTestMode(
  kv: Deno.Kv,
  id: string,
  testMode: boolean,
): Promise<Account | null> {
  return mutateAccount(kv, id, (a) => ({ ...a, testMode }));
}

/** Changes an account's content policy (the fields given); null when there is no such account. */
export function updateContentPolicy(
  kv: Deno.Kv,
  id: string,
  patch: Partial<ContentPolicy>,
): Promise<Account | null> {
  return mutateAccount(kv, id, (a) => ({
    ...a,
    contentPolicy: { ...contentPolicyOf(a), ...patch },
  }));
}
