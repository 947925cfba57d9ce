/**
 * What intake asks the sandbox: whether a submission runs in test mode (the request said so, its
 * credential has `test_mode`, or its account does by default), and how a test-mode or simulator
 * recipient is filed. Test-mode mail is filed under the simulator domain, so the one site that
 * delivers it is the simulated MX, whatever the recipient's own domain: it cannot leave.
 *
 * @module
 */
import { getAccount } from "../store/accounts.ts";
import { getCredential } from "../store/credentials.ts";
import { isPresuppressed, sandboxList, simulatorLocal } from "../policy/sandbox.ts";

export interface SandboxIntake {
  /** The simulator domain (POSTERN_SIMULATOR_DOMAIN). */
  domain: string;
  /** Whether mail of this account and credential (null: trusted relay) is in test mode. */
  testMode(account: string, credentialId: string | null): Promise<boolean>;
}

/** A short memory: a PATCH reaches every node within this, and a burst costs no reads. */
const TTL_MS = 1_000;

export function sandboxIntake(kv: Deno.Kv, domain: string, now = Date.now): SandboxIntake {
  const seen = new Map<string, { value: boolean; until: number }>();
  const cached = async (key: string, read: () => Promise<boolean>) => {
    const hit = seen.get(key);
    if (hit && hit.until > now()) return hit.value;
    const value = await read();
    if (seen.size > 10_000) seen.clear();
    seen.set(key, { value, until: now() + TTL_MS });
    return value;
  };
  return {
    domain,
    async testMode(account, credentialId) {
      const [byCredential, byAccount] = await Promise.all([
        credentialId === null
          ? false
          : cached(credentialId, async () =>
            (await getCredential(kv, credentialId))?.testMode ?? false),
        cached(
          `account:${account}`,
          async () => (await getAccount(kv, account))?.testMode ?? false,
        ),
      ]);
      return byCredential || byAccount;
    },
  };
}

/** The domain a recipient's due entry is filed under: the simulator's for test-mode mail. */
export function queueDomain(
  sandbox: SandboxIntake | undefined,
  test: boolean,
  rcptDomain: string,
): string {
  return test && sandbox ? sandbox.domain : rcptDomain;
}

/**
 * Why a simulator recipient counts as suppressed: on the sandbox's own list of the account, or
 * suppressed@ (always on it); null for every other address.
 */
export function sandboxSuppression(
  sandbox: SandboxIntake | undefined,
  lists: { reasonFor(account: string, address: string): string | null } | undefined,
  account: string,
  rcpt: string,
): string | null {
  if (!sandbox || simulatorLocal(rcpt, sandbox.domain) === null) return null;
  if (isPresuppressed(rcpt, sandbox.domain)) return "sandbox";
  return lists?.reasonFor(sandboxList(account), rcpt) ?? null;
}

/** Whether `rcpt` is a simulator address (no real mailbox behind it). */
export function isSimulatorAddress(sandbox: { domain: string } | undefined, rcpt: string) {
  return sandbox !== undefined && simulatorLocal(rcpt, sandbox.domain) !== null;
}
