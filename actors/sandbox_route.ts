/**
 * Where the simulator domain's mail goes: the sandbox's simulated MX on loopback, as a site of
 * its own whose host name is the simulator domain (so the `sandbox` shaping profile applies to
 * it and to nothing else, whatever other routes point at loopback).
 */
import type { Destination } from "./routing.ts";

export function withSimulator(
  resolve: (domain: string) => Promise<Destination>,
  simulator: { domain: string; port: number },
): (domain: string) => Promise<Destination> {
  const destination: Destination = {
    ok: true,
    site: `sandbox:${simulator.domain}`,
    hostNames: [simulator.domain],
    targets: [{ name: simulator.domain, host: "127.0.0.1", port: simulator.port }],
    requireTls: false,
    // Like a route: the simulated MX publishes no MTA-STS or DANE policy to look up.
    route: { auth: false },
  };
  return (domain) =>
    domain.toLowerCase() === simulator.domain ? Promise.resolve(destination) : resolve(domain);
}
