/**
 * The sandbox's simulated MX: an SMTP server on loopback that the relay delivers the simulator
 * domain (and all test-mode mail) to, answering per recipient local part as core/policy/sandbox.ts
 * lists. Because it is a real destination the site actors reach over TCP, the outcomes travel
 * the production path: classification, retries, backoff, DSNs, events and webhooks.
 *
 * Staged behaviours (defer, greylist, throttle) keep their state per envelope sender and
 * recipient in memory: a relay restart starts them afresh, which a rehearsal can live with.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import { deliveryBehavior, greylistReply, THROTTLE_ATTEMPTS } from "../core/policy/sandbox.ts";
import {
  type AfterDeliveryDeps,
  complain,
  type Delivered,
  replyOutOfOffice,
} from "../core/sandbox/after_delivery.ts";
import type { Logger } from "../core/log.ts";
import { listeningPort } from "./server.ts";
import { applySmtpServerPatches } from "./smtp_server_patches.ts";

export interface SimulatorDeps {
  domain: string;
  greylistMs: number;
  tls: { key: string; cert: string };
  log: Logger;
  after: AfterDeliveryDeps;
  now(): number;
}

export interface Simulator {
  /** The loopback port the relay routes the simulator domain to. */
  port: number;
  close(): Promise<void>;
}

function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

export async function startSimulator(deps: SimulatorDeps): Promise<Simulator> {
  applySmtpServerPatches();
  /** Staged behaviours: attempts seen (defer, throttle) or first sight (greylist). */
  const seen = new Map<string, { count: number; first: number }>();
  const note = (key: string) => {
    const s = seen.get(key) ?? { count: 0, first: deps.now() };
    s.count++;
    seen.set(key, s);
    if (seen.size > 100_000) seen.delete(seen.keys().next().value!);
    return s;
  };

  function rcptReply(rcpt: string, session: SMTPServerSession): Error | "stall" | null {
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
    const key = `${from.toLowerCase()}\0${rcpt.toLowerCase()}`;
    switch (deliveryBehavior(rcpt, deps.domain)) {
      case "bounce":
        return smtpError(550, "5.1.1 No such user here (simulated)");
      case "mailbox-full":
        return smtpError(552, "5.2.2 Mailbox full (simulated)");
      case "defer":
        if (note(key).count === 1) {
          return smtpError(451, "4.3.0 Temporary failure, try again (simulated)");
        }
        seen.delete(key);
        return null;
      case "greylist": {
        const s = note(key);
        if (deps.now() - s.first < deps.greylistMs) {
          const reply = greylistReply(Math.max(1, Math.round(deps.greylistMs / 1000)));
          return smtpError(451, reply.slice(4));
        }
        seen.delete(key);
        return null;
      }
      case "throttle":
        if (note(key).count <= THROTTLE_ATTEMPTS) {
          // smtp-server closes the connection after any 421.
          return smtpError(421, "4.7.0 Too many messages, slow down (simulated)");
        }
        seen.delete(key);
        return null;
      case "timeout":
        return "stall";
      case "tls-required":
        return session.secure
          ? null
          : smtpError(530, "5.7.0 Must issue a STARTTLS command first (simulated)");
      default:
        return null;
    }
  }

  const server = new SMTPServer({
    // Our replies carry their enhanced codes; the patches send them as written.
    postern: { earlyTalkerPause: false, authOnlyOverTls: false },
    name: deps.domain,
    banner: "Postern sandbox (simulated MX)",
    disabledCommands: ["AUTH"],
    authOptional: true,
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: false,
    key: deps.tls.key,
    cert: deps.tls.cert,
    logger: false,
    size: 0,
    onRcptTo(address, session, callback) {
      const verdict = rcptReply(address.address, session);
      // timeout@: no reply at all; the relay's RCPT timeout ends the attempt.
      if (verdict === "stall") return;
      callback(verdict ?? undefined);
    },
    onData(stream, session, callback) {
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("end", () => {
        const raw = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks) {
          raw.set(c, o);
          o += c.length;
        }
        // Read before the reply: smtp-server resets the envelope once it has answered.
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
        const rcpts = [...session.envelope.rcptTo];
        callback(null, "2.0.0 Delivered (simulated)");
        for (const r of rcpts) {
          const d: Delivered = { mailFrom, rcpt: r.address, raw };
          const behavior = deliveryBehavior(r.address, deps.domain);
          // After the 250 has gone: the relay records the delivery before the report lands.
          const later = behavior === "complaint"
            ? () => complain(deps.after, d)
            : behavior === "ooo"
            ? () => replyOutOfOffice(deps.after, d)
            : null;
          if (later) {
            later().catch((err) =>
              deps.log.warn("sandbox.after_delivery_failed", { rcpt: r.address, err })
            );
          }
        }
      });
    },
  } as SMTPServerOptions);
  server.on("error", (err: Error) => deps.log.warn("sandbox.simulator_error", { err }));
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  return {
    port: listeningPort(server),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
