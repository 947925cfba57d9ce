/**
 * The sandbox's settings: the simulator domain, and the short clocks its mail runs on so an
 * integration test does not wait a production retry schedule (README "Testing your
 * integration").
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../policy/duration.ts";
import { parseRetrySchedule } from "../policy/retry_schedule.ts";
import { DEFAULT_SIMULATOR_DOMAIN } from "../policy/sandbox.ts";
import { duration, retrySchedule } from "./fields.ts";
import type { ShapingSchema } from "./shaping.ts";

export const SANDBOX_FIELDS = {
  /** The reserved domain whose addresses the simulated MX answers for. */
  simulatorDomain: z.string().trim().toLowerCase().regex(
    /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/,
    "expected a domain name such as simulator.postern.invalid",
  ).default(DEFAULT_SIMULATOR_DOMAIN),
  /** Retry delays for sandbox mail (simulator addresses and test mode); the last repeats. */
  sandboxRetrySchedule: retrySchedule.default(parseRetrySchedule("10s,30s,1m")),
  /** Sandbox mail still deferred after this expires (timeout@ ends here). */
  sandboxMaxAge: duration.default(parseDuration("10m")),
  /** The window greylist@ names and holds to. */
  sandboxGreylist: duration.default(parseDuration("30s")),
  /** How late smtp-slow@ answers after the final dot. */
  sandboxSlowDelay: duration.default(parseDuration("30s")),
};

/** Env variable → field, merged into load.ts's table. */
export const SANDBOX_ENV_NAMES = {
  POSTERN_SIMULATOR_DOMAIN: "simulatorDomain",
  POSTERN_SANDBOX_RETRY_SCHEDULE: "sandboxRetrySchedule",
  POSTERN_SANDBOX_MAX_AGE: "sandboxMaxAge",
  POSTERN_SANDBOX_GREYLIST: "sandboxGreylist",
  POSTERN_SANDBOX_SLOW_DELAY: "sandboxSlowDelay",
} as const;

/**
 * The shaping profile of the simulator's site: the production backoff engages on throttle@ but
 * recovers in seconds, so one rehearsed 421 storm does not slow every other sandbox test for
 * five minutes. `shaping.provider.sandbox` in the config file overrides any of it.
 */
export function withSandboxShaping(
  shaping: z.output<typeof ShapingSchema>,
  domain: string,
): z.output<typeof ShapingSchema> {
  return {
    ...shaping,
    provider: {
      ...shaping.provider,
      sandbox: {
        match: [domain],
        backoff_cooldown: parseDuration("10s"),
        backoff_message_rate: { count: 20, perMs: 1_000 },
        failed_host_cooldown: parseDuration("1s"),
        ...shaping.provider.sandbox,
      },
    },
  };
}
