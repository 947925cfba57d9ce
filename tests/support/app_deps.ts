/**
 * HttpDeps for an app built in-process (`createApp(...).request()`), on a real KV, with nothing
 * behind the resolver: for tests of the HTTP layer itself.
 *
 * @module
 */
import type { HttpDeps } from "../../http/app.ts";
import { Committer } from "../../core/store/committer.ts";
import { BodyCache } from "../../core/store/body_cache.ts";
import { QueueSignal } from "../../core/queue_signal.ts";
import { SendLimits } from "../../core/send_limits.ts";
import { type Logger, silentLogger } from "../../core/log.ts";
import { dnsResolver } from "../../core/mail/mx.ts";
import { SecretBox } from "../../core/auth/secret_box.ts";

export async function appDeps(
  kv: Deno.Kv,
  options: { adminTokenHash?: string; log?: Logger } = {},
): Promise<HttpDeps> {
  return {
    kv,
    adminTokenHash: options.adminTokenHash ?? "x",
    defaultAccount: "default",
    spfInclude: "relay.test",
    txtLookup: () => Promise.resolve([]),
    intake: {
      kv,
      committer: new Committer(kv),
      hostname: "relay.test",
      maxMessageSize: 1024,
      bodyCache: new BodyCache(),
      signal: new QueueSignal(),
      log: options.log ?? silentLogger,
    },
    limits: new SendLimits(kv),
    maxRecipients: 1000,
    // Nothing listens on port 9: a lookup fails instead of reaching anything.
    resolver: dnsResolver({ ipAddr: "127.0.0.1", port: 9 }),
    webhookAllowed: () => false,
    secretBox: await SecretBox.fromMaterial(new Uint8Array(32)),
    trusted: () => false,
    eventSettleMs: 0,
  };
}
