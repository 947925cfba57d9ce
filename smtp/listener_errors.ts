/**
 * What smtp-server reports as listener errors, logged so an operator can act on them: a failed
 * TLS handshake (an untrusting client, an old protocol, plain text on 465) once, as
 * `smtp.tls_failed` with the client's address, and anything else as `<prefix>.error`.
 * smtp-server emits one failed STARTTLS handshake several times (the TLS socket's `error` and
 * `_tlsError` both fire), with the same error object.
 */
import type { Logger } from "../core/log.ts";

type ListenerError = Error & {
  code?: string;
  remoteAddress?: string;
  meta?: { remoteAddress?: string };
};

const TLS_FAILURE = /\bTLS\b|\bSSL\b|handshake|certificate/i;

export function listenerErrorLogger(
  log: Logger,
  prefix: string,
  listener: string,
): (err: ListenerError) => void {
  const seen = new WeakSet<Error>();
  return (err) => {
    if (seen.has(err)) return;
    seen.add(err);
    const client = err.remoteAddress ?? err.meta?.remoteAddress ?? null;
    // Node's (and Deno's) codes for a handshake the TLS library refused: ERR_SSL_…; Deno's words
    // for some ("peer is incompatible: …") name neither TLS nor the handshake.
    if (
      TLS_FAILURE.test(err.message) || err.code === "TLSError" || err.code?.startsWith("ERR_SSL_")
    ) {
      log.warn("smtp.tls_failed", { listener, client, error: err.message });
    } else {
      log.warn(`${prefix}.error`, { listener, client, err });
    }
  };
}
