/**
 * Records stored under short field names. SQLite keeps Deno KV's records whole in its B-tree,
 * parent pages included (docs/ARCHITECTURE.md, "Store facts and limits"), so every byte of a
 * record written for each message counts over and over in the bytes written to disk; V8's format
 * writes every field name in full with every record. A family's table maps each long name to a
 * short one; a field missing from the table keeps its name.
 */

export interface FieldNames {
  short: Readonly<Record<string, string>>;
  long: Readonly<Record<string, string>>;
}

/** The table for `short` (long name → short name) and its inverse. */
export function fieldNames(short: Record<string, string>): FieldNames {
  return {
    short,
    long: Object.fromEntries(Object.entries(short).map(([l, s]) => [s, l])),
  };
}

/**
 * `o` with each field renamed by `names`, leaving out undefined values (V8 writes a field that is
 * present but undefined) and the fields `omit` says the reader restores.
 */
export function renamed(
  o: object,
  names: Readonly<Record<string, string>>,
  omit?: (field: string, value: unknown) => boolean,
): Record<string, unknown> {
  // for…in, not Object.entries: it runs for every record of every message, and the pairs
  // Object.entries builds were most of its cost (the records are plain objects: no inherited keys).
  const out: Record<string, unknown> = {};
  const fields = o as Record<string, unknown>;
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined || omit?.(k, v)) continue;
    out[names[k] ?? k] = v;
  }
  return out;
}

/** Distances V8 keeps as small integers (31 bits). */
const SMALL = 2 ** 30;

/**
 * `at` stored as its distance from a time its reader knows, or null where that is not a small
 * integer giving `at` back exactly. V8 writes a small integer in two to five bytes, any other
 * number (a millisecond timestamp; also a difference computed from two, until `| 0` makes it an
 * integer again) in nine.
 */
export function sinceBase(at: unknown, base: number | null): number | null {
  if (typeof at !== "number" || base === null) return null;
  const d = at - base;
  if (!Number.isInteger(d) || d <= -SMALL || d >= SMALL || base + d !== at) return null;
  return d | 0;
}
