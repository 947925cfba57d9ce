/**
 * A table from each case of a discriminated union (keyed by `reason`) to what an edge answers
 * with: smtp/replies.ts and http/errors.ts translate send-scope refusals and intake rejections
 * through one such table each, and the type makes a new reason a compile error until both
 * tables answer it.
 *
 * @module
 */

/** The case of `T` whose `reason` may be `K` (a case may share its shape among reasons). */
type Case<T, K> = T extends { reason: infer R } ? (K extends R ? T : never) : never;

/** Each case of `T`, by its `reason`, to an `R` (given `A`, what the edge adds). */
export type ByReason<T extends { reason: string }, R, A extends unknown[] = []> = {
  [K in T["reason"]]: (r: Case<T, K>, ...more: A) => R;
};

/** Looks `r` up in a table of its reasons. */
export function byReason<T extends { reason: string }, R, A extends unknown[] = []>(
  table: ByReason<T, R, A>,
  r: T,
  ...more: A
): R {
  return (table[r.reason as T["reason"]] as (r: T, ...more: A) => R)(r, ...more);
}
