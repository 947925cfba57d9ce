/** The Hono app: one sub-app per resource, one error renderer. */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type AppEnv, bearerAuth } from "./auth.ts";
import { credentialsApi } from "./credentials.ts";
import { messagesApi } from "./messages.ts";
import { errors, renderError } from "./errors.ts";

export interface HttpDeps {
  kv: Deno.Kv;
  adminTokenHash: string;
  defaultAccount: string;
}

const MAX_JSON_BODY = 1024 * 1024;

export function createApp(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  app.onError(renderError);
  app.notFound(() => {
    throw errors.notFound("route");
  });
  app.get("/healthz", (c) => c.json({ ok: true }));

  const v1 = new Hono<AppEnv>();
  v1.use(
    "*",
    bodyLimit({
      maxSize: MAX_JSON_BODY,
      onError: () => {
        throw errors.tooLarge(MAX_JSON_BODY);
      },
    }),
  );
  v1.use("*", bearerAuth(deps));
  v1.route("/credentials", credentialsApi(deps.kv));
  v1.route("/messages", messagesApi(deps.kv));
  app.route("/v1", v1);
  return app;
}
