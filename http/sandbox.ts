/** GET /v1/sandbox: the simulator's addresses and what each does, for people and test suites. */
import { Hono } from "hono";
import { DEFAULT_SIMULATOR_DOMAIN, sandboxTable } from "../core/policy/sandbox.ts";
import type { AppEnv } from "./auth.ts";
import type { SandboxHttp } from "./sandbox_faults.ts";

const DEFAULTS: SandboxHttp = {
  domain: DEFAULT_SIMULATOR_DOMAIN,
  greylistMs: 30_000,
  slowMs: 30_000,
};

export function sandboxApi(settings: SandboxHttp = DEFAULTS) {
  const app = new Hono<AppEnv>();
  app.get("/", (c) =>
    c.json({
      domain: settings.domain,
      test_mode:
        'Set test_mode on a credential or an account, or send with "test": true: the mail ' +
        "goes through everything but is delivered only to the simulated MX (default outcome " +
        "delivered; simulator addresses behave as listed).",
      plus_suffix: "A +suffix is kept: bounce+order42@ behaves as bounce@ and is told apart.",
      addresses: sandboxTable(settings).map((e) => ({
        address: `${e.local}@${settings.domain}`,
        kind: e.kind,
        does: e.does,
        reply: e.reply,
        events: e.events,
        ...(e.http ? { http: e.http } : {}),
      })),
    }));
  return app;
}
