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
import { sweepStaged } from "./core/store/sweeper.ts";
import { loadOrCreateDevCertificate } from "./core/dev_tls.ts";
import { denoResolver } from "./core/mail/mx.ts";
import { shortId } from "./core/ids.ts";
import { ListenError, startSmtp } from "./smtp/server.ts";
import { createApp } from "./http/app.ts";
import { startWorker } from "./actors/worker.ts";
import { resolveDestination } from "./actors/routing.ts";

const DEFAULT_ACCOUNT = "default";

function fatal(message: string): never {
  console.error(`postern: ${message}`);
  Deno.exit(2);
}

async function readTls(config: Config, hostname: string) {
  if (config.tlsCert || config.tlsKey) {
    if (!config.tlsCert || !config.tlsKey) {
      fatal("POSTERN_TLS_CERT and POSTERN_TLS_KEY must be set together");
    }
    try {
      return {
        cert: await Deno.readTextFile(config.tlsCert),
        key: await Deno.readTextFile(config.tlsKey),
      };
    } catch (err) {
      fatal(`POSTERN_TLS_CERT/POSTERN_TLS_KEY: cannot read: ${(err as Error).message}`);
    }
  }
  return await loadOrCreateDevCertificate(config.dataDir, hostname);
}

async function main() {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message);
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  const hostname = config.hostname ?? Deno.hostname();
  await Deno.mkdir(config.dataDir, { recursive: true });
  const tls = await readTls(config, hostname);
  const kv = await Deno.openKv(config.kv ?? `${config.dataDir}/postern.kv`);
  const committer = new Committer(kv);
  const bodyCache = new BodyCache();
  const signal = new QueueSignal();
  const admin = await ensureAdminToken(kv, config.adminToken);
  const nodeId = shortId("node_", 10);
  sweepStaged(kv).catch((err) => log.warn("sweeper.failed", { err }));

  const intake = {
    kv,
    committer,
    hostname,
    maxMessageSize: config.maxMessageSize,
    bodyCache,
    signal,
    log,
  };

  let smtp;
  let http: Deno.HttpServer;
  try {
    smtp = await startSmtp({ config, hostname, intake, tls, log, trustedAccount: DEFAULT_ACCOUNT });
    const app = createApp({ kv, adminTokenHash: admin.hash, defaultAccount: DEFAULT_ACCOUNT });
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
  const worker = startWorker({
    kv,
    committer,
    bodyCache,
    log,
    signal,
    nodeId,
    hostname,
    retry: { schedule: config.retrySchedule, maxAgeMs: config.maxAge },
    connectionLimit: config.connectionLimit,
    maxDeliveriesPerConnection: config.maxDeliveriesPerConnection,
    connectTimeoutMs: config.connectTimeout,
    commandTimeoutMs: config.commandTimeout,
    pollIntervalMs: config.pollInterval,
    resolveDestination: (domain) =>
      resolveDestination(domain, { routes: config.routes, resolver, mxPort: config.mxPort }),
    now: Date.now,
  });

  log.info("ready", {
    hostname,
    node: nodeId,
    smtp_port: config.smtpPort,
    smtps_port: config.smtpsPort,
    http_port: config.httpPort,
    data_dir: config.dataDir,
  });
  if (admin.printOnce) {
    console.error(
      [
        "",
        `Postern is running on ${hostname}.`,
        `  SMTP submission (STARTTLS): ${config.listen}:${config.smtpPort}`,
        `  SMTPS (implicit TLS):       ${config.listen}:${config.smtpsPort}`,
        `  HTTP API:                   http://${config.listen}:${config.httpPort}`,
        "",
        `Admin token (shown once, keep it safe): ${admin.printOnce}`,
        "",
        "Send a first message:",
        `  curl -s -X POST http://127.0.0.1:${config.httpPort}/v1/credentials \\`,
        `    -H "Authorization: Bearer ${admin.printOnce}" -d '{"name":"my-app"}'`,
        `  swaks --server 127.0.0.1:${config.smtpPort} --tls --auth PLAIN \\`,
        "    --auth-user <username> --auth-password <password> --to you@example.com",
        "",
      ].join("\n"),
    );
  }

  let stopping = false;
  async function shutdown(signalName: string) {
    if (stopping) return;
    stopping = true;
    log.info("shutdown.start", { signal: signalName, grace_ms: config.shutdownGrace });
    const deadline = Date.now() + config.shutdownGrace;
    await smtp!.drain(config.shutdownGrace);
    await worker.stop(Math.max(0, deadline - Date.now()));
    await Promise.race([
      Promise.all([smtp!.close(), http!.shutdown()]),
      new Promise((r) => setTimeout(r, Math.max(100, deadline - Date.now()))),
    ]);
    kv.close();
    log.info("shutdown.done", {});
    Deno.exit(0);
  }
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
}

await main();
