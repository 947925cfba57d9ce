/**
 * The few places where smtp-server's fixed behaviour is wrong for a submission relay. Everything
 * is gated on `postern` options of our own servers, so other SMTPServer instances (test sinks)
 * behave as shipped.
 *
 * 1. smtp-server waits 100 ms before every greeting to catch early talkers (hard-coded in
 *    SMTPConnection.init). Apps that open a connection per message then cap at ~10 msg/s per
 *    session. Submission clients must authenticate or come from trusted networks, so instead of
 *    the pause we greet at once; `earlyTalkerPause: true` keeps it for untrusted listeners.
 * 2. AUTH is advertised in EHLO only once TLS is up (RFC 4954 §4: no plaintext passwords).
 * 3. Replies that already carry an RFC 3463 enhanced code (ours, from replies.ts) are sent as-is;
 *    smtp-server would otherwise prefix a generic code chosen from the numeric code alone.
 */
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";
import { ENHANCED_OVERRIDES } from "./replies.ts";

export interface PosternServerOptions {
  earlyTalkerPause: boolean;
  authOnlyOverTls: boolean;
}

// deno-lint-ignore no-explicit-any
type Conn = any;
const proto = SMTPConnection.prototype as Conn;
const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

function options(conn: Conn): PosternServerOptions | undefined {
  return conn._server?.options?.postern;
}

let applied = false;

export function applySmtpServerPatches() {
  if (applied) return;
  applied = true;

  const init = proto.init;
  proto.init = function (this: Conn) {
    const o = options(this);
    if (!o || o.earlyTalkerPause) return init.call(this);
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max && this._server.connections.size > max) {
        return this.send(421, this.name + " Too many connected clients, try again in a moment");
      }
      this.connectionReady();
    });
  };

  const isSupported = proto._isSupported;
  proto._isSupported = function (this: Conn, command: string) {
    if (this._inEhlo && command === "AUTH" && !this.secure && options(this)?.authOnlyOverTls) {
      return false;
    }
    return isSupported.call(this, command);
  };

  const ehlo = proto.handler_EHLO;
  proto.handler_EHLO = function (this: Conn, ...args: unknown[]) {
    this._inEhlo = true;
    try {
      return ehlo.apply(this, args);
    } finally {
      this._inEhlo = false;
    }
  };

  const send = proto.send;
  proto.send = function (this: Conn, code: number, data: unknown, context?: unknown) {
    if (!options(this)) return send.call(this, code, data, context);
    if (typeof data === "string" && ENHANCED_PREFIX.test(data)) {
      return send.call(this, code, data, false);
    }
    const override = ENHANCED_OVERRIDES[code];
    if (override && typeof data === "string") {
      return send.call(this, code, `${override} ${data}`, false);
    }
    return send.call(this, code, data, context);
  };
}
