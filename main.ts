/**
 * Composition root: load config once, open the store, start the roles this node runs
 * (POSTERN_ROLES: smtp, http, worker). Nothing imports this file.
 *
 * What each role needs locally: smtp a certificate (given, or generated into the data dir);
 * worker the data dir's node-id lock; http nothing but the store, so an http-only node runs
 * without write access (but to a local store file) and without a data dir.
 */
import { ConfigError, loadConfig } from "./core/config/load.ts";
import type { Config } from "./core/config/schema.ts";
import { createLogger, type Logger } from "./core/log.ts";
import { sweepStaged } from "./core/store/sweeper.ts";
import { spoolDirFor, useBodySpool } from "./core/store/body_spool.ts";
import { type LoadedTls, loadTls, openTlsSource, watchTlsFiles } from "./core/tls_source.ts";
import { TlsPairError } from "./core/tls_pair.ts";
import { helpText } from "./core/config/help.ts";
import { watchLaunchers } from "./core/launcher.ts";
import denoJson from "./deno.json" with { type: "json" };
import { dnsResolver } from "./core/mail/mx.ts";
import { claimNodeId, type NodeIdentity } from "./core/node_id.ts";
import { shortId } from "./core/ids.ts";
import { openSecretBox, type SecretBox } from "./core/auth/secret_box.ts";
import { isRemoteStore, openKvFile, prepareDataDir } from "./core/store/kv_file.ts";
import { type CheckpointPacer, paceCheckpoints } from "./core/store/checkpoint_pacer.ts";
import { boundedKv } from "./core/store/bounded_kv.ts";
import { ListenError, startSmtp } from "./smtp/server.ts";
import { SmtpServerMismatch } from "./smtp/smtp_server_internals.ts";
import { healthOnlyApp, httpRoleApp } from "./http/role.ts";
import { type HttpListener, serveHttp } from "./http/listener.ts";
import { startWorker, type Worker } from "./actors/worker.ts";
import { resolveDestination } from "./actors/routing.ts";
import { SiteDirectory } from "./actors/site_directory.ts";
import { ConnectionCap } from "./actors/connection_cap.ts";
import { replyTimeouts } from "./core/config/outbound.ts";
import { CredentialSettingsCache } from "./actors/credential_settings.ts";
import { createQueueControl } from "./actors/queue_control.ts";
import { resolveShaping } from "./core/config/shaping.ts";
import type { QueueControl } from "./core/queue_control.ts";
import type { TlsReportControl } from "./core/tls_report_control.ts";
import { networkMatcher } from "./core/net/cidr.ts";
import { sweepExpiredMessages, sweepExpiredStats } from "./core/store/retention.ts";
import { sweepWindows } from "./core/store/window_counts.ts";
import { startWebhooks } from "./actors/webhook.ts";
import { startInbound } from "./smtp/inbound.ts";
import { type NodeServices, startNodeServices } from "./core/node_services.ts";
import { startHeartbeat } from "./core/heartbeat.ts";
import { startSimulator } from "./smtp/simulator.ts";
import { withSimulator } from "./actors/sandbox_route.ts";
import { withSandboxShaping } from "./core/config/sandbox.ts";
import { denoTxtLookup } from "./core/mail/txt.ts";
import { readCaFile } from "./core/config/outbound_tls.ts";
import { OutboundTls } from "./actors/outbound_tls.ts";
import { TlsReportSender } from "./actors/tls_report_sender.ts";
import { fetchStsPolicy } from "./core/mail/mta_sts_fetch.ts";
import { dnssecTlsaLookup } from "./core/mail/tlsa.ts";
import { DEFAULT_ACCOUNT } from "./core/store/accounts.ts";

function fatal(message: string): never {
  console.error(`postern: ${message}`);
  Deno.exit(2);
}

/** The machine's name, or a stand-in where the node may not ask (no --allow-sys). */
function systemHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

const VERSION = (denoJson as { version?: string }).version ?? "unknown";

/** `--help` and `--version` answer and exit; nothing is started or read. */
function answerArguments(args: string[]): void {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(VERSION));
    Deno.exit(0);
  }
  if (args.includes("--version") || args.includes("-V")) {
    console.log(`postern ${VERSION}`);
    Deno.exit(0);
  }
  if (args.length > 0) fatal(`unknown argument ${args[0]}; see --help`);
}

/**
 * The certificate, checked as a pair (a mismatched, swapped, unreadable or expired one stops
 * start-up naming its setting): POSTERN_TLS_CERT/KEY, or the generated one in the data dir.
 */
async function readTls(config: Config, hostname: string) {
  try {
    return await openTlsSource(config, { dataDir: config.dataDir, hostname, now: Date.now() });
  } catch (err) {
    if (err instanceof TlsPairError) fatal(err.message);
    fatal(
      `POSTERN_DATA_DIR: the smtp role cannot keep its generated certificate in ` +
        `${config.dataDir} (${(err as Error).message}); set POSTERN_TLS_CERT and POSTERN_TLS_KEY`,
    );
  }
}

/** The worker role: site actors, webhooks, retention, and the sandbox's simulated MX. */
async function startWorkerRole(
  config: Config,
  services: NodeServices,
  ctx: {
    nodeId: string;
    hostname: string;
    log: Logger;
    tls: { key: string; cert: string };
    stopping: () => boolean;
  },
) {
  const { kv, committer, bodyCache, signal, suppressions, intake, verp, secretBox } = services;
  const { nodeId, hostname, log } = ctx;
  sweepStaged(kv).catch((err) => log.warn("sweeper.failed", { err }));
  // The sandbox's simulated MX, on a loopback port of its own: the simulator domain routes there,
  // so the node that delivers the mail runs it.
  const simulator = await startSimulator({
    domain: config.simulatorDomain,
    greylistMs: config.sandboxGreylist,
    tls: ctx.tls,
    log,
    now: Date.now,
    after: {
      reports: { kv, committer, log, now: Date.now, suppressions, listFor: services.listFor },
      ...(verp ? { verp } : {}),
      hostname,
      log,
    },
  });
  const resolver = dnsResolver(config.dns);
  let caCerts: string[] | undefined;
  try {
    caCerts = readCaFile(config.caFile);
  } catch (err) {
    fatal(`POSTERN_CA_FILE: ${(err as Error).message}`);
  }
  const addressesOf = async (name: string) => {
    const out: string[] = [];
    for (const type of ["A", "AAAA"] as const) {
      out.push(...await resolver.addresses(name, type).catch(() => []));
    }
    return out;
  };
  const txt = denoTxtLookup(config.dns);
  // MTA-STS, DANE and TLS report counters for every outbound connection (README "Outbound TLS").
  const outboundTls = new OutboundTls({
    kv,
    committer,
    log,
    now: Date.now,
    txt,
    fetchPolicy: (domain) =>
      fetchStsPolicy(domain, { addresses: addressesOf, port: config.mtaStsPort, ca: caCerts }),
    ...(config.dnssecResolver ? { tlsa: dnssecTlsaLookup(config.dnssecResolver) } : {}),
    ca: caCerts,
  });
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
    inFlow: services.inFlow,
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
    timeouts: replyTimeouts(config),
    connections: new ConnectionCap(config.outboundMaxConnections),
    pollIntervalMs: config.pollInterval,
    leaseTtlMs: config.leaseTtl,
    directory,
    pools: config.pools,
    credentials,
    ...(verp ? { verp } : {}),
    tls: outboundTls,
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
        if (r.last === null || ctx.stopping()) break;
        after = r.last;
      }
      await sweepExpiredStats(kv, { retentionMs: config.retention, now: Date.now() });
      await sweepWindows(kv, Date.now());
    } catch (err) {
      log.warn("retention.failed", { err });
    }
  };
  sweepRetention();
  const retentionTimer = setInterval(sweepRetention, 3_600_000);
  // The daily aggregate TLS reports (RFC 8460), hourly for days that are over.
  const tlsReports = new TlsReportSender({
    kv,
    intake,
    account: DEFAULT_ACCOUNT,
    hostname,
    log,
    now: Date.now,
    txt,
    addresses: addressesOf,
    ca: caCerts,
  });
  tlsReports.start();
  // Held mail nobody released within POSTERN_HOLD_EXPIRY is dropped.
  const holdTimer = setInterval(() => {
    services.holds.expire().catch((err) => log.warn("hold.expiry_failed", { err }));
  }, Math.min(config.pollInterval, Math.max(1_000, config.holdExpiry)));
  return {
    worker,
    tlsReports,
    /** `step` marks the end of each part of the stop, for the shutdown log line. */
    async stop(deadline: number, step: (name: string) => void) {
      await worker.stop(Math.max(0, deadline - Date.now()));
      step("deliveries");
      clearInterval(retentionTimer);
      tlsReports.stop();
      clearInterval(holdTimer);
      await webhooks.stop(Math.max(0, Math.min(2_000, deadline - Date.now())));
      step("webhooks");
    },
    closeSimulator: () => simulator.close(),
  };
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
  const roles = new Set(config.roles);
  // smtp keeps its generated certificate there, worker its node-id lock; http needs neither.
  const local = roles.has("smtp") || roles.has("worker");
  if (!local && !config.kv) {
    fatal(
      `POSTERN_KV: a node with POSTERN_ROLES=${config.roles.join(",")} keeps no data directory; ` +
        "set POSTERN_KV to the shared store (a KV file path or a KV Connect URL)",
    );
  }
  const hostname = config.hostname ?? systemHostname();
  if (!local && !config.secretKey) {
    fatal(
      `POSTERN_SECRET_KEY: a node with POSTERN_ROLES=${config.roles.join(",")} keeps no data ` +
        "directory for a generated key; set POSTERN_SECRET_KEY, the same on every node sharing " +
        "the store",
    );
  }
  if (local) {
    try {
      await prepareDataDir(config.dataDir);
    } catch (err) {
      fatal(
        `POSTERN_DATA_DIR: the ${roles.has("worker") ? "worker" : "smtp"} role needs a ` +
          `writable data directory, and ${config.dataDir} is not (${(err as Error).name})`,
      );
    }
  }
  // smtp's listeners and the worker's simulated MX speak TLS.
  const tlsOpened = local ? await readTls(config, hostname) : null;
  let loadedTls: LoadedTls | null = tlsOpened?.loaded ?? null;
  const tls = loadedTls?.pair ?? null;
  const kvPath = config.kv ?? `${config.dataDir}/postern.kv`;
  let kv: Deno.Kv;
  let pacer: CheckpointPacer | null = null;
  try {
    // Bounded: a remote store's client would otherwise wait without end while it is unreachable.
    // A local file is not: an abandoned commit that lands later would be mail told 451 and sent.
    kv = boundedKv(
      await openKvFile(kvPath),
      isRemoteStore(kvPath) ? config.storeRetry : Infinity,
    );
    pacer = await paceCheckpoints(kvPath, { log });
    const spoolDir = spoolDirFor(kvPath);
    if (spoolDir) await useBodySpool(kv, spoolDir);
  } catch (err) {
    fatal(`POSTERN_KV: cannot open the store ${kvPath}: ${(err as Error).message}`);
  }
  // Webhook secrets, DKIM keys and the VERP key are sealed under a key kept outside the store.
  let secretBox: SecretBox;
  try {
    secretBox = await openSecretBox({ secretKey: config.secretKey, dataDir: config.dataDir });
  } catch (err) {
    fatal(`POSTERN_SECRET_KEY: ${(err as Error).message}`);
  }
  let services: NodeServices;
  try {
    services = await startNodeServices(kv, config, {
      hostname,
      log,
      secretBox,
      localStore: !isRemoteStore(kvPath),
    });
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message);
    throw err;
  }
  // A worker resumes the sites of the process it replaces (the data dir's id); other roles hold
  // no leases and take a fresh id.
  let node: NodeIdentity = { id: shortId("node_", 10), file: null };
  if (roles.has("worker")) {
    try {
      node = await claimNodeId(config.dataDir, systemHostname());
    } catch (err) {
      fatal(
        `POSTERN_DATA_DIR: the worker role keeps its node id in ${config.dataDir}/node_id and ` +
          `cannot (${(err as Error).name}); give it a writable data directory`,
      );
    }
  }
  const nodeId = node.id;
  const heartbeat = await startHeartbeat(kv, {
    id: nodeId,
    hostname,
    roles: config.roles,
    log,
    now: Date.now,
  });

  // The queue API reads live actor state; the worker starts after the listeners.
  let queueControl: QueueControl | null = null;
  let tlsReportSender: TlsReportControl | null = null;
  let smtp: Awaited<ReturnType<typeof startSmtp>> | null = null;
  let http: HttpListener;
  let inbound:
    | { close(): Promise<void>; updateTls(tls: { key: string; cert: string }): void }
    | null = null;
  try {
    if (roles.has("smtp")) {
      smtp = await startSmtp({
        config,
        hostname,
        intake: services.intake,
        tls: tls!,
        log,
        trustedAccount: config.trustedAccount,
        limits: services.limits,
        memory: services.memory,
        inFlow: services.inFlow,
        sandbox: services.sandbox,
      });
      const verp = services.verp;
      inbound = verp
        ? await startInbound({
          port: config.inboundPort,
          listen: config.listen,
          hostname,
          tls: tls!,
          log,
          config,
          reports: {
            kv,
            committer: services.committer,
            verp,
            log,
            now: Date.now,
            suppressions: services.suppressions,
            listFor: services.listFor,
          },
        })
        : null;
    }
    const app = roles.has("http")
      ? httpRoleApp(config, services, {
        hostname,
        queue: () => queueControl,
        tlsReports: () => tlsReportSender,
      })
      : healthOnlyApp(config, services);
    try {
      http = await serveHttp({
        hostname: config.listen,
        port: config.httpPort,
        log,
        limits: {
          headersTimeoutMs: config.httpHeadersTimeout,
          requestTimeoutMs: config.httpRequestTimeout,
          minBodyRate: config.httpMinBodyRate,
          maxConnections: config.httpMaxConnections,
        },
        fetch: app.fetch,
      });
    } catch (err) {
      throw new ListenError(
        `POSTERN_HTTP_PORT: cannot listen on ${config.listen}:${config.httpPort} (${
          (err as { code?: string }).code ?? (err as Error).name
        }); set POSTERN_HTTP_PORT to a free port`,
      );
    }
  } catch (err) {
    if (err instanceof ListenError || err instanceof SmtpServerMismatch) fatal(err.message);
    throw err;
  }

  let stopping = false;
  const workerRole = roles.has("worker")
    ? await startWorkerRole(config, services, {
      nodeId,
      hostname,
      log,
      tls: tls!,
      stopping: () => stopping,
    })
    : null;
  const worker: Worker | null = workerRole?.worker ?? null;
  if (worker) queueControl = createQueueControl(worker, { kv, now: Date.now });
  tlsReportSender = workerRole?.tlsReports ?? null;

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
    if (!tlsOpened || !loadedTls) return;
    const { source } = tlsOpened;
    try {
      const next = await loadTls(source, Date.now());
      if (next.pair.cert === loadedTls.pair.cert && next.pair.key === loadedTls.pair.key) {
        // A SIGHUP with nothing new still deserves an answer in the log.
        if (reason === "SIGHUP") log.info("tls.unchanged", { cert: source.certPath });
        return;
      }
      smtp?.updateTls(next.pair);
      inbound?.updateTls(next.pair);
      loadedTls = next;
      log.info("tls.reloaded", {
        reason,
        cert: source.certPath,
        names: next.facts.names,
        not_after: next.facts.notAfter.toISOString(),
      });
    } catch (err) {
      log.warn("tls.reload_failed", {
        reason,
        cert: source.certPath,
        error: err instanceof TlsPairError ? err.message : String(err),
        kept: "the previous certificate",
      });
    }
  };
  // Only a configured pair is watched. The generated one lives in the data directory beside the
  // KV file, and a watch on that directory woke the main thread at every commit (about 0.7 % of it
  // under load) for files nobody but the relay writes; SIGHUP still reloads it.
  const tlsWatch = tlsOpened && !tlsOpened.source.generated
    ? watchTlsFiles(tlsOpened.source, () => reloadTls("files_changed"))
    : { close() {} };
  Deno.addSignalListener("SIGHUP", () => reloadTls("SIGHUP"));

  log.info("ready", {
    pid: Deno.pid,
    hostname,
    dashboard_url: roles.has("http") ? dashboardUrl : null,
    node: nodeId,
    roles: config.roles,
    smtp_port: smtp ? config.smtpPort : null,
    smtps_port: smtp ? config.smtpsPort : null,
    http_port: config.httpPort,
    data_dir: local ? config.dataDir : null,
    lease_ttl_ms: config.leaseTtl,
    ...(tlsOpened && loadedTls
      ? {
        tls_cert: tlsOpened.source.certPath,
        tls_names: loadedTls.facts.names,
        tls_not_after: loadedTls.facts.notAfter.toISOString(),
        tls_generated: tlsOpened.source.generated,
      }
      : {}),
  });
  const token = services.admin.printOnce;
  const certPath = tlsOpened?.source.certPath ?? "";
  console.error(
    [
      "",
      `Postern ${VERSION} is running on ${hostname} (roles: ${config.roles.join(", ")}).`,
      ...(smtp
        ? [
          `  SMTP submission (STARTTLS): ${config.listen}:${config.smtpPort}`,
          `  SMTPS (implicit TLS):       ${config.listen}:${config.smtpsPort}`,
        ]
        : []),
      `  HTTP API:                   http://${config.listen}:${config.httpPort}`,
      `  Dashboard:                  ${dashboardUrl}`,
      ...(tlsOpened && loadedTls
        ? [
          `  TLS certificate:            ${certPath}${
            tlsOpened.source.generated
              ? " (generated, self-signed: see README, TLS certificates)"
              : ""
          }`,
          `    covers ${loadedTls.facts.names.join(", ")}; valid until ${
            loadedTls.facts.notAfter.toISOString().slice(0, 10)
          }`,
        ]
        : []),
      ...(token
        ? [
          "",
          `Admin token (shown once, keep it safe): ${token}`,
          "Open the dashboard and sign in with it, or use it as the API's bearer token.",
          "",
          "Send a first message:",
          `  curl -s -X POST http://127.0.0.1:${config.httpPort}/v1/credentials \\`,
          `    -H "Authorization: Bearer ${token}" -d '{"name":"my-app"}'`,
          `  swaks --server 127.0.0.1:${config.smtpPort} --tls --tls-verify --tls-ca-path ${certPath} \\`,
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

  async function shutdown(signalName: string) {
    if (stopping) return;
    stopping = true;
    log.info("shutdown.start", { signal: signalName, grace_ms: config.shutdownGrace });
    const started = Date.now();
    const deadline = started + config.shutdownGrace;
    // How long each step took: a stop that waits out the grace says which step held it.
    const took: Record<string, number> = {};
    let mark = started;
    const step = (name: string) => {
      const at = Date.now();
      took[`${name}_ms`] = at - mark;
      mark = at;
    };
    await smtp?.drain(config.shutdownGrace);
    step("drain");
    await workerRole?.stop(deadline, step);
    services.stop();
    tlsWatch.close();
    launchers.stop();
    await heartbeat.stop();
    step("heartbeat");
    await Promise.race([
      Promise.all([
        smtp?.close(),
        http!.shutdown(),
        inbound?.close(),
        workerRole?.closeSimulator(),
      ]),
      new Promise((r) => setTimeout(r, Math.max(100, deadline - Date.now()))),
    ]);
    step("close");
    await pacer?.stop();
    step("checkpoint");
    kv.close();
    node.file?.close(); // releases the id for the next start
    log.info("shutdown.done", { ms: Date.now() - started, ...took });
    Deno.exit(0);
  }
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
}

await main();
