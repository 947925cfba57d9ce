/**
 * What every role of a node shares, built once on the open store: the start-up records (admin
 * token, default account, VERP key), the suppression cache, intake's dependencies (the one door
 * into the queue for SMTP and the send API) and the send limits. main.ts and edge.ts both start
 * from here, so an edge HTTP node and a VM node accept mail the same way.
 */
import type { Config } from "./config/schema.ts";
import { ConfigError } from "./config/load.ts";
import type { Logger } from "./log.ts";
import { Committer } from "./store/committer.ts";
import { BodyCache } from "./store/body_cache.ts";
import { QueueSignal } from "./queue_signal.ts";
import { InFlow } from "./in_flow.ts";
import { ensureAdminToken } from "./store/admin_token.ts";
import { prepareLoginChecks } from "./store/credentials.ts";
import { ensureDefaultAccount, getAccount } from "./store/accounts.ts";
import { SuppressionCache } from "./store/suppressions.ts";
import { ensureVerpKey } from "./store/verp_key.ts";
import { sealDomainKeys, signingKeysFor } from "./store/domains.ts";
import { sealWebhookSecrets } from "./store/webhooks.ts";
import type { SecretBox } from "./auth/secret_box.ts";
import { claimSecretKeyId } from "./store/secret_key_id.ts";
import { sandboxIntake } from "./sandbox/intake.ts";
import { suppressionListFor } from "./policy/sandbox.ts";
import { SendLimits } from "./send_limits.ts";
import { MemoryBudget } from "./policy/memory_budget.ts";
import type { IntakeDeps } from "./intake.ts";
import type { VerpConfig } from "./mail/verp.ts";
import { RspamdClient } from "./content/rspamd.ts";
import { ContentGate } from "./content/gate.ts";
import { HoldQueue } from "./content/hold_queue.ts";
import { DkimPool } from "./mail/dkim_pool.ts";
import { signingPlacement } from "./policy/dkim_placement.ts";

export interface NodeServices {
  kv: Deno.Kv;
  committer: Committer;
  bodyCache: BodyCache;
  signal: QueueSignal;
  /** Intake flow control: this node's backlog of first attempts, and the pause before MAIL FROM. */
  inFlow: InFlow;
  admin: { hash: string; printOnce?: string };
  suppressions: SuppressionCache;
  verp: VerpConfig | undefined;
  /** Opens the secrets sealed in the store (webhook secrets, DKIM keys, the VERP key). */
  secretBox: SecretBox;
  intake: IntakeDeps;
  limits: SendLimits;
  /** Held mail (content filtering): release, drop, recheck, expiry. */
  holds: HoldQueue;
  /** Message bytes held in memory, over SMTP and HTTP (POSTERN_MEMORY_BUDGET). */
  memory: MemoryBudget;
  /** The sandbox's settings, for the doors (its submission faults) and GET /v1/sandbox. */
  sandbox: { domain: string; greylistMs: number; slowMs: number };
  /** Which suppression list an address goes on: simulator addresses go on the sandbox's own. */
  listFor(account: string, address: string): string;
  /** Stops the background refresh of the suppression cache and the DKIM signing workers. */
  stop(): void;
}

/** Throws ConfigError for a setting the store contradicts (a trusted account that is not there). */
export async function startNodeServices(
  kv: Deno.Kv,
  config: Config,
  options: {
    hostname: string;
    log: Logger;
    secretBox: SecretBox;
    /** The store is a local file (see CommitterOptions.localStore); edge stores are not. */
    localStore?: boolean;
  },
): Promise<NodeServices> {
  const { hostname, log, secretBox } = options;
  await checkSecretKey(kv, secretBox);
  // Records written before secrets were sealed are sealed now (and read as they are meanwhile).
  const sealed = await sealWebhookSecrets(kv, secretBox) + await sealDomainKeys(kv, secretBox);
  if (sealed > 0) log.info("secrets.sealed", { count: sealed });
  const committer = new Committer(kv, {
    storeRetryMs: config.storeRetry,
    lingerMs: config.commitLinger,
    localStore: options.localStore ?? false,
  });
  const bodyCache = new BodyCache();
  const signal = new QueueSignal();
  const admin = await ensureAdminToken(kv, config.adminToken);
  await prepareLoginChecks();
  await ensureDefaultAccount(kv);
  if (!(await getAccount(kv, config.trustedAccount))) {
    throw new ConfigError(
      `POSTERN_TRUSTED_ACCOUNT: no account "${config.trustedAccount}"; create it with ` +
        "POST /v1/accounts and set its id",
    );
  }
  // Every node keeps all suppression lists in memory: intake checks recipients without a read.
  const suppressions = new SuppressionCache(kv);
  await suppressions.refresh();
  const stop = suppressions.start(
    config.pollInterval,
    (err) => log.warn("suppressions.refresh_failed", { err }),
  );
  // VERP return paths, when a bounce domain is configured; the key is shared through the store.
  const verp = config.bounceDomain
    ? { domain: config.bounceDomain, key: await ensureVerpKey(kv, secretBox) }
    : undefined;
  // Content filtering: rspamd scans at intake when POSTERN_RSPAMD_URL is set.
  const scanner = config.rspamdUrl
    ? new RspamdClient({
      url: config.rspamdUrl,
      timeoutMs: config.rspamdTimeout,
      ...(config.rspamdPassword ? { password: config.rspamdPassword } : {}),
    })
    : null;
  const contentFilter = scanner
    ? new ContentGate({
      kv,
      committer,
      scanner,
      log,
      holdExpiryMs: config.holdExpiry,
      brake: { limit: config.abuseBrakeLimit, windowMs: config.abuseBrakeWindow },
    })
    : null;
  // DKIM signatures are made off the main thread; the pool's workers end with stop().
  const dkimPool = new DkimPool({
    ...signingPlacement(navigator.hardwareConcurrency ?? 1, config.dkimWorkers),
    log,
  });
  const intake: IntakeDeps = {
    ...(verp ? { verp } : {}),
    ...(contentFilter ? { contentFilter } : {}),
    sandbox: sandboxIntake(kv, config.simulatorDomain),
    suppressions,
    kv,
    committer,
    hostname,
    maxMessageSize: config.maxMessageSize,
    maxHeaderSize: config.maxHeaderSize,
    bodyCache,
    signal,
    log,
    dkimKeyFor: (account: string, fromDomain: string) =>
      signingKeysFor(kv, secretBox, account, fromDomain),
    dkimSignatures: dkimPool,
  };
  // One limiter for both doors: a credential's rate holds across SMTP and the send API.
  const limits = new SendLimits(kv);
  // One memory budget for both doors too: bytes held are bytes held, whichever door they came by.
  const memory = new MemoryBudget(
    config.memoryBudget,
    Math.min(
      config.memoryBudget,
      config.memoryBudgetPerClient ?? Math.floor(config.memoryBudget * 3 / 4),
    ),
  );
  return {
    kv,
    committer,
    bodyCache,
    signal,
    inFlow: new InFlow({ maxDelayMs: config.inFlowDelay }),
    admin,
    suppressions,
    verp,
    secretBox,
    intake,
    limits,
    holds: new HoldQueue({ kv, committer, signal, log, scanner }),
    memory,
    sandbox: {
      domain: config.simulatorDomain,
      greylistMs: config.sandboxGreylist,
      slowMs: config.sandboxSlowDelay,
    },
    listFor: (account, address) => suppressionListFor(account, address, config.simulatorDomain),
    stop: () => {
      stop();
      dkimPool.close();
    },
  };
}

/**
 * Every node on a store must seal and open secrets under the same key. The first node records
 * its key's id in the store; a node with another key (its own generated secret.key, say) stops
 * at start rather than fail later on every secret another node sealed.
 */
async function checkSecretKey(kv: Deno.Kv, box: SecretBox): Promise<void> {
  const recorded = await claimSecretKeyId(kv, box.keyId);
  if (recorded === box.keyId) return;
  throw new ConfigError(
    `POSTERN_SECRET_KEY: this node's key (id ${box.keyId}) is not the key the store's ` +
      `secrets are sealed under (id ${recorded}); set the same POSTERN_SECRET_KEY on ` +
      "every node sharing the store",
  );
}
