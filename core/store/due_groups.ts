/**
 * How a message's recipients at one domain are split over due entries. Each due entry becomes
 * one SMTP transaction and one attempt commit, which writes three keys per recipient (row,
 * timeline event, account log event) under KV's 1000-mutation cap; 100 recipients per
 * transaction is also what RFC 5321 §4.5.3.1.8 says every server must accept. Intake (which
 * writes the entries) and the worker (which hands them to actors in memory) both split here, so
 * they agree on every entry's key: it ends in the group's first recipient index.
 */
export const MAX_RECIPIENTS_PER_DUE = 100;

/** `idxs` in order, cut into groups of at most MAX_RECIPIENTS_PER_DUE. */
export function dueGroups<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_RECIPIENTS_PER_DUE) {
    out.push(items.slice(i, i + MAX_RECIPIENTS_PER_DUE));
  }
  return out;
}
