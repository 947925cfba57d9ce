/**
 * The HTTP role for an edge runtime (Deno Deploy): no raw TCP, no file system, no subprocess.
 * `deno serve edge.ts` or a Deploy project serves the default export. The store is
 * `Deno.openKv()` with no argument (on Deploy: the project's KV), or POSTERN_KV when set (a KV
 * Connect URL, with DENO_KV_ACCESS_TOKEN). Settings come from the environment as for main.ts;
 * mail accepted here is delivered by worker nodes sharing the store (README, "Deploying").
 */
import { ConfigError, loadConfig } from "./core/config/load.ts";
import { createLogger } from "./core/log.ts";
import { startNodeServices } from "./core/node_services.ts";
import { httpRoleApp } from "./http/role.ts";
import { openSecretBox } from "./core/auth/secret_box.ts";
import { boundedKv } from "./core/store/bounded_kv.ts";

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

async function build(): Promise<Handler> {
  const config = loadConfig(Deno.env.toObject());
  // An isolate's stdout may not be a file: log through the console.
  const log = createLogger({ level: config.logLevel, write: (line) => console.log(line) });
  // An isolate has no file system for a generated key: the key comes from the environment.
  if (!config.secretKey) {
    throw new ConfigError(
      "POSTERN_SECRET_KEY: the edge HTTP role needs it, the same as on every node sharing the store",
    );
  }
  const secretBox = await openSecretBox({ secretKey: config.secretKey, dataDir: "" });
  const kv = boundedKv(
    config.kv ? await Deno.openKv(config.kv) : await Deno.openKv(),
    config.storeRetry,
  );
  const hostname = config.hostname ?? "postern-edge";
  const services = await startNodeServices(kv, config, { hostname, log, secretBox });
  const app = httpRoleApp(config, services, { hostname });
  log.info("edge.ready", { kv: config.kv ? "POSTERN_KV" : "default" });
  return (request, info) => app.fetch(request, info);
}

let handler: Promise<Handler> | null = null;

/** Built on the first request, so a module import does no I/O (Deploy imports it before serving). */
function ready(): Promise<Handler> {
  handler ??= build().catch((err) => {
    handler = null; // the next request tries again (a store that was briefly unreachable)
    throw err;
  });
  return handler;
}

export default {
  async fetch(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    let serve: Handler;
    try {
      serve = await ready();
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : "the store is not reachable";
      console.error(`postern edge: ${(err as Error).message}`);
      return Response.json({ error: { code: "unavailable", message, details: {} } }, {
        status: 503,
        headers: { "retry-after": "5" },
      });
    }
    return await serve(request, info);
  },
} satisfies Deno.ServeDefaultExport;
