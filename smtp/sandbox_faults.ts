/**
 * Submission faults for clients to rehearse the relay itself failing (core/policy/sandbox.ts):
 * chosen by a recipient at the simulator domain, or by the credential's `sandbox_submission`.
 * smtp-421 answers the RCPT and closes; smtp-451 and smtp-552 take the whole message and refuse
 * it after the final dot; smtp-slow queues it and sends the 250 late. Only the slow one queues.
 */
import type { Readable } from "node:stream";
import { type SubmissionFault, submissionFault } from "../core/policy/sandbox.ts";
import type { Reply } from "./replies.ts";

export interface SandboxSubmission {
  /** The simulator domain (POSTERN_SIMULATOR_DOMAIN). */
  domain: string;
  /** How late smtp-slow's 250 comes (POSTERN_SANDBOX_SLOW_DELAY). */
  slowMs: number;
}

const reply = (code: number, message: string): Reply => ({ responseCode: code, message });

export const sandboxReplies = {
  "smtp-421": reply(421, "4.3.2 Service not available, closing channel (sandbox)"),
  "smtp-451": reply(451, "4.3.0 Queue temporarily unavailable, try again later (sandbox)"),
  "smtp-552": reply(552, "5.3.4 Message too big for system (sandbox)"),
} as const;

/** The 421 a recipient (or the credential) asks for at RCPT TO; null for anything else. */
export function faultAtRcpt(
  sandbox: SandboxSubmission | undefined,
  rcpt: string,
  setting: SubmissionFault | null | undefined,
): Reply | null {
  if (!sandbox) return null;
  return submissionFault([rcpt], sandbox.domain, setting) === "smtp-421"
    ? sandboxReplies["smtp-421"]
    : null;
}

/** The fault the transaction plays at its final dot, if any. */
export function faultAtData(
  sandbox: SandboxSubmission | undefined,
  recipients: readonly string[],
  setting: SubmissionFault | null | undefined,
): SubmissionFault | null {
  return sandbox ? submissionFault(recipients, sandbox.domain, setting) : null;
}

/** Reads the message to its end, then refuses it (nothing is queued). */
export function refuseAfterData(
  stream: Readable,
  refusal: Reply,
  callback: (err?: Error | null) => void,
) {
  stream.on("data", () => {});
  stream.on("end", () => callback(Object.assign(new Error(refusal.message), refusal)));
}

/** The same callback, answering `ms` later. */
export function late<A extends unknown[]>(
  callback: (...args: A) => void,
  ms: number,
): (...args: A) => void {
  return (...args) => setTimeout(() => callback(...args), ms);
}
