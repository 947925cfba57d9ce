/**
 * The send API's side of the sandbox's submission faults (core/policy/sandbox.ts): the SMTP
 * faults mapped to what an HTTP client meets when a relay fails the same way. Nothing is queued,
 * except for smtp-slow, whose 202 only comes late.
 */
import { type SubmissionFault, submissionFault } from "../core/policy/sandbox.ts";
import { errors } from "./errors.ts";

export interface SandboxHttp {
  domain: string;
  slowMs: number;
  greylistMs: number;
}

/** How long a client is asked to wait before retrying a 503. */
const RETRY_AFTER_MS = 30_000;

/** Throws the fault's error, waits for smtp-slow, or returns at once. */
export async function playSubmissionFault(
  sandbox: SandboxHttp | undefined,
  recipients: readonly string[],
  setting: SubmissionFault | null | undefined,
): Promise<void> {
  if (!sandbox) return;
  switch (submissionFault(recipients, sandbox.domain, setting)) {
    case "smtp-421":
      throw errors.unavailableFor(
        "Service not available (sandbox smtp-421); retry later",
        RETRY_AFTER_MS,
      );
    case "smtp-451":
      throw errors.unavailableFor(
        "The queue is temporarily unavailable (sandbox smtp-451); retry later",
        RETRY_AFTER_MS,
      );
    case "smtp-552":
      throw errors.tooLargeSimulated();
    case "smtp-slow":
      await new Promise((r) => setTimeout(r, sandbox.slowMs));
  }
}
