/**
 * Where RSA DKIM signatures are made: on the main thread, or in a pool of workers on the other
 * cores. A worker pays only where a signature costs more than handing it over: the hand-over
 * (a worker's wake-up and back, copies, context switches) cost 0.3–0.6 ms of CPU per message on
 * a 2-core machine, while an RSA-2048 signature costs 0.25–0.35 ms on one such machine and
 * 1.1 ms on another (`openssl speed rsa2048`; bench/README.md, "Where DKIM signing runs"). So
 * from 3 cores on the pool always signs (the main thread is the limit and other cores are idle);
 * up to 2 cores the main thread signs while its signatures cost less than the hand-over, and
 * hands them to the pool for good once they are measured to cost more.
 *
 * @module
 */

/** What handing one signature to a worker and back costs the machine, in ms of CPU. */
export const SIGNING_HAND_OVER_MS = 0.5;

/** In-place signatures measured before their cost decides anything (the first parse keys). */
export const SIGNING_SAMPLES = 32;

export interface SigningPlacement {
  /** Workers in the pool (started as signing needs them); 0: every signature in place. */
  workers: number;
  /**
   * RSA is signed in place while a signature costs no more than this (ms, averaged over the
   * last signatures); 0: never in place when there are workers.
   */
  inPlaceUpToMs: number;
}

/** The placement for a machine with `cores` cores; `configured` is POSTERN_DKIM_WORKERS. */
export function signingPlacement(cores: number, configured?: number): SigningPlacement {
  if (configured !== undefined) return { workers: configured, inPlaceUpToMs: 0 };
  if (cores > 2) return { workers: cores, inPlaceUpToMs: 0 };
  if (cores < 2) return { workers: 0, inPlaceUpToMs: 0 };
  return { workers: cores, inPlaceUpToMs: SIGNING_HAND_OVER_MS };
}

/**
 * The running average of in-place signature costs, by exponential smoothing: recent enough to
 * see the machine as it is, steady enough that one slow signature (a GC pause) moves nothing.
 */
export function averageSigningMs(average: number | null, sampleMs: number): number {
  return average === null ? sampleMs : average + (sampleMs - average) / 16;
}

/** Whether RSA keeps being signed in place after `samples` signatures averaging `averageMs`. */
export function keepSigningInPlace(
  samples: number,
  averageMs: number,
  upToMs: number,
): boolean {
  return samples < SIGNING_SAMPLES || averageMs <= upToMs;
}
