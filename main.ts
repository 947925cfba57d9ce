/**
 * Composition root: load config once, open the store, start the smtp, http and worker roles.
 * Nothing imports this file.
 */
import { ConfigError, loadConfig } from "./core/config/load.ts";
import type { Config } from "./core/config/schema.ts";
import { createLogger } from "./core/log.ts";
import { Committer } from "./core/store/committer.ts";
import { BodyCache } from "./core/store/body_cache.ts";
import { QueueSignal } from "./core/queue_signal.ts";
import { ensureAdminToken } from "./core/store/admin_token.ts";
import { prepareLoginChecks } from "./core/store/credentials.ts";
import { sweepStaged } from "./core/store/sweeper.ts";
import { type LoadedTls, loadTls, openTlsSource, watchTlsFiles } from "./core/tls_source.ts";
import { TlsPairError } from "./core/tls_pair.ts";
import { helpText } from "./core/config/help.ts";
import { watchLaunchers } from "./core/launcher.ts";
import denoJson from "./deno.json" with { type: "json" };
import { denoResolver } from "./core/mail/mx.ts";
import { claimNodeId } from "./core/node_id.ts";
import { ListenError, startSmtp } from "./smtp/server.ts";
import { createApp } from "./http/app.ts";
import { startWorker } from "./actors/worker.ts";
import { resolveDestination } from "./actors/routing.ts";
import { SiteDirectory } from "./actors/site_directory.ts";
import { CredentialSettingsCache } from "./actors/credential_settings.ts";
import { createQueueControl } from "./actors/queue_control.ts";
import { resolveShaping } from "./core/config/shaping.ts";
import { SuppressionCache } from "./core/store/suppressions.ts";
import type { QueueControl } from "./core/queue_control.ts";
import { DEFAULT_ACCOUNT, ensureDefaultAccount, getAccount } from "./core/store/accounts.ts";
import { sealDomainKeys, signingKeysFor } from "./core/store/domains.ts";
import { sealWebhookSecrets } from "./core/store/webhooks.ts";
import { openSecretBox, type SecretBox } from "./core/auth/secret_box.ts";
import { openKvFile, prepareDataDir } from "./core/store/kv_file.ts";
import { SendLimits } from "./core/send_limits.ts";
import { denoTxtLookup } from "./core/mail/txt.ts";
import { networkMatcher } from "./core/net/cidr.ts";
import { sweepExpiredMessages, sweepExpiredStats } from "./core/store/retention.ts";
import { startWebhooks } from "./actors/webhook.ts";
import { ensureVerpKey } from "./core/store/verp_key.ts";
import { startInbound } from "./smtp/inbound.ts";
import { startSimulator } from "./smtp/simulator.ts";
import { sandboxIntake } from "./core/sandbox/intake.ts";
import { withSimulator } from "./actors/sandbox_route.ts";
import { withSandboxShaping } from "./core/config/sandbox.ts";
import { suppressionListFor } from "./core/policy/sandbox.ts";

function fatal(message: string): never {
  console.error(`postern: ${message}`);
  Deno.exit(2);
}

/** `--help` and `--version` answer and exit; nothing is started or read. */
function answerArguments(args: string[]): void {
  const version = (denoJson as { version?: string }).version ?? "unknown";
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(version));
    Deno.exit(0);
  }
  if (args.includes("--version") || args.includes("-V")) {
    console.log(`postern ${version}`);
    Deno.exit(0);
  }
  if (args.length > 0) fatal(`unknown argument ${args[0]}; see --help`);
}

async function main() {
  answerArguments(Deno.args);
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message);
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  const hostname = config.hostname ?? Deno.hostname();
  await prepareDataDir(config.dataDir);
  let tlsSource;
  let loadedTls: LoadedTls;
  try {
    const opened = await openTlsSource(config, {
      dataDir: config.dataDir,
      hostname,
      now: Date.now(),
    });
    tlsSource = opened.source;
    loadedTls = opened.loaded;
  } catch (err) {
    if (err instanceof TlsPairError) fatal(err.message);
    throw err;
  }
  const tls = loadedTls.pair;
  const kv = await openKvFile(config.kv ?? `${config.dataDir}/postern.kv`);
  // Webhook secrets and DKIM keys are sealed under a key kept outside the KV file; records
  // written before that are sealed now (and read as they are meanwhile).
  let secretBox: SecretBox;
  try {
    secretBox = await openSecretBox({ secretKey: config.secretKey, dataDir: config.dataDir });
  } catch (err) {
    fatal(`POSTERN_SECRET_KEY: ${(err as Error).message}`);
  }
  const sealed = await sealWebhookSecrets(kv, secretBox) + await sealDomainKeys(kv, secretBox);
  if (sealed > 0) log.info("secrets.sealed", { count: sealed });
  const committer = new Committer(kv);
  const bodyCache = new BodyCache();
  const signal = new QueueSignal();
  const admin = await ensureAdminToken(kv, config.adminToken);
  await prepareLoginChecks();
  await ensureDefaultAccount(kv);
  if (!(await getAccount(kv, config.trustedAccount))) {
    fatal(
      `POSTERN_TRUSTED_ACCOUNT: no account "${config.trustedAccount}"; create it with ` +
        "POST /v1/accounts and set its id",
    );
  }
  const node = await claimNodeId(config.dataDir, Deno.hostname());
  const nodeId = node.id;
  sweepStaged(kv).catch((err) => log.warn("sweeper.failed", { err }));

  // Every node keeps all suppression lists in memory: intake checks recipients without a read.
  const suppressions = new SuppressionCache(kv);
  await suppressions.refresh();
  const stopSuppressionRefresh = suppressions.start(
    config.pollInterval,
    (err) => log.warn("suppressions.refresh_failed", { err }),
  );
  // The queue API reads live actor state; the worker starts after the listeners.
  let queueControl: QueueControl | null = null;

  // VERP return paths, when a bounce domain is configured; the key is shared through the store.
  const verp = config.bounceDomain
    ? { domain: config.bounceDomain, key: await ensureVerpKey(kv, secretBox) }
    : undefined;
  const sandbox = sandboxIntake(kv, config.simulatorDomain);
  // Simulator addresses that bounce or complain go on the sandbox's own list, not the account's.
  const listFor = (account: string, address: string) =>
    suppressionListFor(account, address, config.simulatorDomain);
  const intake = {
    ...(verp ? { verp } : {}),
    sandbox,
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
  };

  // One limiter for both doors: a credential's rate holds across SMTP and the send API.
  const limits = new SendLimits(kv);
  let smtp;
  let http: Deno.HttpServer;
  let inbound:
    | { close(): Promise<void>; updateTls(tls: { key: string; cert: string }): void }
    | null = null;
  // The sandbox's simulated MX, on a loopback port of its own; the simulator domain routes there.
  const simulator = await startSimulator({
    domain: config.simulatorDomain,
    greylistMs: config.sandboxGreylist,
    tls,
    log,
    now: Date.now,
    after: {
      reports: { kv, committer, log, now: Date.now, suppressions, listFor },
      ...(verp ? { verp } : {}),
      hostname,
      log,
    },
  });
  const sandboxSettings = {
    domain: config.simulatorDomain,
    greylistMs: config.sandboxGreylist,
    slowMs: config.sandboxSlowDelay,
  };
  try {
    smtp = await startSmtp({
      config,
      hostname,
      intake,
      tls,
      log,
      trustedAccount: config.trustedAccount,
      limits,
      sandbox: sandboxSettings,
    });
    inbound = verp
      ? await startInbound({
        port: config.inboundPort,
        listen: config.listen,
        hostname,
        tls,
        log,
        config,
        reports: { kv, committer, verp, log, now: Date.now, suppressions, listFor },
      })
      : null;
    const app = createApp({
      kv,
      adminTokenHash: admin.hash,
      defaultAccount: DEFAULT_ACCOUNT,
      spfInclude: config.spfInclude ?? hostname,
      txtLookup: denoTxtLookup(config.dns),
      queue: () => queueControl,
      suppressions,
      intake,
      limits,
      resolver: denoResolver(config.dns),
      webhookAllowed: networkMatcher(config.webhookAllow),
      secretBox,
      trusted: networkMatcher(config.trustedNetworks),
      eventSettleMs: config.eventSettle,
      smtp: { host: hostname, submissionPort: config.smtpPort, smtpsPort: config.smtpsPort },
      sandbox: sandboxSettings,
      httpLimits: {
        maxBody: config.httpMaxBody,
        maxJsonDepth: config.httpMaxJsonDepth,
        rate: config.httpRateLimit,
        authFailureLimit: config.authFailureLimit,
        authLockoutMs: config.authLockout,
      },
    });
    try {
      http = Deno.serve({
        hostname: config.listen,
        port: config.httpPort,
        onListen() {},
      }, app.fetch);
    } catch (err) {
      throw new ListenError(
        `POSTERN_HTTP_PORT: cannot listen on ${config.listen}:${config.httpPort} (${
          (err as Error).name
        }); set POSTERN_HTTP_PORT to a free port`,
      );
    }
  } catch (err) {
    if (err instanceof ListenError) fatal(err.message);
    throw err;
  }

  const resolver = denoResolver(config.dns);
  const shaping = resolveShaping(withSandboxShaping(config.shaping, config.simulatorDomain), {
    connectionLimit: config.connectionLimit,
    maxDeliveriesPerConnection: config.maxDeliveriesPerConnection,
    connectTimeout: config.connectTimeout,
  });
  const directory = new SiteDirectory({
    // The simulator domain goes to the sandbox's simulated MX, on this node's loopback.
    resolve: withSimulator(
      (domain) =>
        resolveDestination(domain, { routes: config.routes, resolver, mxPort: config.mxPort }),
      { domain: config.simulatorDomain, port: simulator.port },
    ),
    shaping,
    now: Date.now,
  });
  const credentials = new CredentialSettingsCache(kv, Date.now);
  const worker = startWorker({
    kv,
    committer,
    bodyCache,
    log,
    signal,
    nodeId,
    hostname,
    retry: {
      schedule: config.retrySchedule,
      maxAgeMs: config.maxAge,
      sandbox: {
        domain: config.simulatorDomain,
        schedule: config.sandboxRetrySchedule,
        maxAgeMs: config.sandboxMaxAge,
      },
    },
    commandTimeoutMs: config.commandTimeout,
    pollIntervalMs: config.pollInterval,
    directory,
    pools: config.pools,
    credentials,
    ...(verp ? { verp } : {}),
    bounces: {
      kv,
      intake,
      bodyCache,
      hostname,
      suppressAfterExpiries: config.suppressAfterExpiries,
      suppressions,
      credentials,
      log,
      now: Date.now,
    },
    now: Date.now,
  });
  queueControl = createQueueControl(worker, { kv, now: Date.now });
  const webhooks = startWebhooks({
    kv,
    committer,
    log,
    nodeId,
    schedule: config.webhookRetrySchedule,
    timeoutMs: config.webhookTimeout,
    settleMs: config.eventSettle,
    pollIntervalMs: Math.min(config.pollInterval, 1_000),
    retentionMs: config.retention,
    resolver,
    allowed: networkMatcher(config.webhookAllow),
    secretBox,
    now: Date.now,
  });
  // Retention: at start and hourly, in batches until the expired messages are gone.
  const sweepRetention = async () => {
    try {
      let after: string | undefined;
      for (;;) {
        const r = await sweepExpiredMessages(kv, {
          retentionMs: config.retention,
          now: Date.now(),
          ...(after ? { after } : {}),
        });
        if (r.deleted > 0) log.info("retention.swept", { deleted: r.deleted, kept: r.kept });
        if (r.last === null || stopping) break;
        after = r.last;
      }
      await sweepExpiredStats(kv, { retentionMs: config.retention, now: Date.now() });
    } catch (err) {
      log.warn("retention.failed", { err });
    }
  };
  sweepRetention();
  const retentionTimer = setInterval(sweepRetention, 3_600_000);

  // A wildcard listen address is not one a browser can open; loopback reaches it.
  const browseHost = config.listen === "0.0.0.0" || config.listen === "::"
    ? "127.0.0.1"
    : config.listen.includes(":")
    ? `[${config.listen}]`
    : config.listen;
  const dashboardUrl = `http://${browseHost}:${config.httpPort}/`;
  // Certificates reload without a restart: on SIGHUP and when the files change. New sessions
  // take the new pair; a pair that fails its check leaves the old one in place.
  const reloadTls = async (reason: string) => {
    try {
      const next = await loadTls(tlsSource, Date.now());
      if (next.pair.cert === loadedTls.pair.cert && next.pair.key === loadedTls.pair.key) {
        // A SIGHUP with nothing new still deserves an answer in the log.
        if (reason === "SIGHUP") log.info("tls.unchanged", { cert: tlsSource.certPath });
        return;
      }
      smtp!.updateTls(next.pair);
      inbound?.updateTls(next.pair);
      loadedTls = next;
      log.info("tls.reloaded", {
        reason,
        cert: tlsSource.certPath,
        names: next.facts.names,
        not_after: next.facts.notAfter.toISOString(),
      });
    } catch (err) {
      log.warn("tls.reload_failed", {
        reason,
        cert: tlsSource.certPath,
        error: err instanceof TlsPairError ? err.message : String(err),
        kept: "the previous certificate",
      });
    }
  };
  const tlsWatch = watchTlsFiles(tlsSource, () => reloadTls("files_changed"));
  Deno.addSignalListener("SIGHUP", () => reloadTls("SIGHUP"));

  log.info("ready", {
    pid: Deno.pid,
    hostname,
    dashboard_url: dashboardUrl,
    node: nodeId,
    smtp_port: config.smtpPort,
    smtps_port: config.smtpsPort,
    http_port: config.httpPort,
    data_dir: config.dataDir,
    tls_cert: tlsSource.certPath,
    tls_names: loadedTls.facts.names,
    tls_not_after: loadedTls.facts.notAfter.toISOString(),
    tls_generated: tlsSource.generated,
  });
  console.error(
    [
      "",
      `Postern ${(denoJson as { version?: string }).version ?? ""} is running on ${hostname}.`,
      `  SMTP submission (STARTTLS): ${config.listen}:${config.smtpPort}`,
      `  SMTPS (implicit TLS):       ${config.listen}:${config.smtpsPort}`,
      `  HTTP API:                   http://${config.listen}:${config.httpPort}`,
      `  Dashboard:                  ${dashboardUrl}`,
      `  TLS certificate:            ${tlsSource.certPath}${
        tlsSource.generated ? " (generated, self-signed: see README, TLS certificates)" : ""
      }`,
      `    covers ${loadedTls.facts.names.join(", ")}; valid until ${
        loadedTls.facts.notAfter.toISOString().slice(0, 10)
      }`,
      ...(admin.printOnce
        ? [
          "",
          `Admin token (shown once, keep it safe): ${admin.printOnce}`,
          "Open the dashboard and sign in with it, or use it as the API's bearer token.",
          "",
          "Send a first message:",
          `  curl -s -X POST http://127.0.0.1:${config.httpPort}/v1/credentials \\`,
          `    -H "Authorization: Bearer ${admin.printOnce}" -d '{"name":"my-app"}'`,
          `  swaks --server 127.0.0.1:${config.smtpPort} --tls --tls-ca-path ${tlsSource.certPath} \\`,
          `    --auth PLAIN --auth-user <username> --auth-password <password> \\`,
          `    --from app@example.com --to delivered@${config.simulatorDomain}`,
        ]
        : []),
      "",
    ].join("\n"),
  );

  // A launcher that exits (npx killed with SIGTERM) stops the relay too: see core/launcher.ts.
  const launchers = watchLaunchers((pid) => {
    log.info("launcher.exited", { pid });
    shutdown("launcher_exited");
  });
  let stopping = false;
  async function shutdown(signalName: string) {
    if (stopping) return;
    stopping = true;
    log.info("shutdown.start", { signal: signalName, grace_ms: config.shutdownGrace });
    const deadline = Date.now() + config.shutdownGrace;
    await smtp!.drain(config.shutdownGrace);
    await worker.stop(Math.max(0, deadline - Date.now()));
    clearInterval(retentionTimer);
    await webhooks.stop(Math.max(0, Math.min(2_000, deadline - Date.now())));
    stopSuppressionRefresh();
    tlsWatch.close();
    launchers.stop();
    await Promise.race([
      Promise.all([smtp!.close(), http!.shutdown(), inbound?.close(), simulator.close()]),
      new Promise((r) => setTimeout(r, Math.max(100, deadline - Date.now()))),
    ]);
    kv.close();
    node.file?.close(); // releases the id for the next start
    log.info("shutdown.done", {});
    Deno.exit(0);
  }
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
}

await main();
