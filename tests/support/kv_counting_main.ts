/**
 * The relay (main.ts) with every call it makes on its store counted: a stand-in entry point for
 * tests and measurements only (startRelay's `entryPoint`), never run in production.
 *
 * `Deno.openKv` is wrapped before main.ts loads, so what is counted is what the relay really
 * asks of Deno KV, under every wrapper of its own (bounded_kv.ts). Per operation and key family
 * (the key's first part) it counts calls, the entries a read returned and the bytes of their
 * values (as V8 serializes them); per commit, its checks and mutations by family.
 *
 * SIGUSR2 writes the totals so far, as JSON ({@linkcode KvCounts}), to `KV_COUNT_FILE`
 * (written whole, then renamed into place). With `KV_COUNT_CALLERS=1` each call is also
 * filed under the repository function that made it (a stack trace per call: slow, for looking,
 * not for timing).
 */
import { valueSize } from "../../core/store/commit_size.ts";

export interface KvCount {
  calls: number;
  /** Entries read (get: found ones; list: every entry yielded), or mutations for a commit. */
  entries: number;
  /** Bytes of the values read, or of the values written by a commit's sets. */
  bytes: number;
}

export interface KvCounts {
  /** "op family" → count; op is get, getMany, list, commit, check, set, delete, sum, watch, … */
  byOp: Record<string, KvCount>;
  /** "op family ← caller" → count (only with KV_COUNT_CALLERS=1). */
  byCaller: Record<string, KvCount>;
}

const counts: KvCounts = { byOp: {}, byCaller: {} };
const withCallers = Deno.env.get("KV_COUNT_CALLERS") === "1";
const REPO = new URL("../../", import.meta.url).href;

function family(key: Deno.KvKey | undefined): string {
  return key && key.length > 0 ? String(key[0]) : "(all)";
}

/** The innermost frame in the repository that is neither this file nor the bounded wrapper. */
function caller(): string {
  const lines = (new Error().stack ?? "").split("\n").slice(1);
  const ours = lines.filter((l) =>
    l.includes(REPO) && !l.includes("kv_counting_main.ts") && !l.includes("bounded_kv.ts")
  );
  const pick = ours.slice(0, 2).map((l) => {
    const m = /at (?:async )?(\S+) \((.*)\)$/.exec(l.trim()) ??
      /at (?:async )?(.*)$/.exec(l.trim());
    const fn = m?.[2] ? m[1] : "(anonymous)";
    const where = (m?.[2] ?? m?.[1] ?? l).replace(REPO, "").replace(/:\d+$/, "");
    return `${fn} ${where}`;
  });
  return pick.join(" < ") || "(outside the repository)";
}

function add(op: string, key: Deno.KvKey | undefined, entries: number, bytes: number, by = "") {
  const name = `${op} ${family(key)}`;
  const row = counts.byOp[name] ??= { calls: 0, entries: 0, bytes: 0 };
  row.calls++;
  row.entries += entries;
  row.bytes += bytes;
  if (by) {
    const c = counts.byCaller[`${name} ← ${by}`] ??= { calls: 0, entries: 0, bytes: 0 };
    c.calls++;
    c.entries += entries;
    c.bytes += bytes;
  }
}

function sizeOf(value: unknown): number {
  try {
    return valueSize(value);
  } catch {
    return 0;
  }
}

function countedList<T>(
  it: Deno.KvListIterator<T>,
  key: Deno.KvKey | undefined,
  by: string,
): Deno.KvListIterator<T> {
  add("list", key, 0, 0, by);
  const wrapped = {
    get cursor() {
      return it.cursor;
    },
    async next() {
      const r = await it.next();
      if (!r.done) {
        const row = counts.byOp[`list ${family(key)}`]!;
        row.entries++;
        row.bytes += sizeOf(r.value.value);
        if (by) {
          const c = counts.byCaller[`list ${family(key)} ← ${by}`]!;
          c.entries++;
          c.bytes += sizeOf(r.value.value);
        }
      }
      return r;
    },
    [Symbol.asyncIterator]() {
      return wrapped;
    },
  };
  return wrapped as unknown as Deno.KvListIterator<T>;
}

function countedAtomic(op: Deno.AtomicOperation, by: string): Deno.AtomicOperation {
  const pending: [string, Deno.KvKey, number][] = [];
  const proxy: Deno.AtomicOperation = new Proxy(op, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "commit") {
        return async () => {
          const res = await target.commit();
          let bytes = 0, mutations = 0;
          for (const [name, key, size] of pending) {
            add(name, key, 1, size, by);
            if (name !== "check") mutations++;
            bytes += size;
          }
          add(res.ok ? "commit" : "commit(failed)", pending[0]?.[1], mutations, bytes, by);
          return res;
        };
      }
      return (...args: unknown[]) => {
        switch (prop) {
          case "check":
            for (const c of args as Deno.AtomicCheck[]) pending.push(["check", c.key, 0]);
            break;
          case "set":
            pending.push(["set", args[0] as Deno.KvKey, sizeOf(args[1])]);
            break;
          case "delete":
          case "sum":
          case "min":
          case "max":
            pending.push([String(prop), args[0] as Deno.KvKey, 0]);
            break;
          case "mutate":
            for (const m of args as Deno.KvMutation[]) {
              pending.push([m.type, m.key, m.type === "set" ? sizeOf(m.value) : 0]);
            }
            break;
          case "enqueue":
            pending.push(["enqueue", ["(queue)"], sizeOf(args[0])]);
            break;
        }
        const result = value.apply(target, args);
        return result === target ? proxy : result;
      };
    },
  });
  return proxy;
}

function counted(kv: Deno.Kv): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const by = () => withCallers ? caller() : "";
      switch (prop) {
        case "get":
          return async (key: Deno.KvKey, opts?: unknown) => {
            const b = by();
            const r = await target.get(key, opts as never);
            add("get", key, r.versionstamp ? 1 : 0, r.versionstamp ? sizeOf(r.value) : 0, b);
            return r;
          };
        case "getMany":
          return async (keys: Deno.KvKey[], opts?: unknown) => {
            const b = by();
            const rs = await target.getMany(keys, opts as never);
            const found = rs.filter((r) => r.versionstamp);
            add(
              `getMany(${keys.length})`,
              keys[0],
              found.length,
              found.reduce((n, r) => n + sizeOf(r.value), 0),
              b,
            );
            return rs;
          };
        case "list":
          return (sel: Deno.KvListSelector, opts?: Deno.KvListOptions) => {
            const s = sel as { prefix?: Deno.KvKey; start?: Deno.KvKey };
            return countedList(target.list(sel, opts), s.prefix ?? s.start, by());
          };
        case "atomic":
          return () => countedAtomic(target.atomic(), by());
        case "set":
        case "delete":
          return (key: Deno.KvKey, ...rest: unknown[]) => {
            add(`kv.${String(prop)}`, key, 1, prop === "set" ? sizeOf(rest[0]) : 0, by());
            return (value as (...a: unknown[]) => unknown).apply(target, [key, ...rest]);
          };
        case "watch":
          return (keys: Deno.KvKey[], ...rest: unknown[]) => {
            add(`watch(${keys.length})`, keys[0], 0, 0, by());
            return (value as (...a: unknown[]) => unknown).apply(target, [keys, ...rest]);
          };
        case "enqueue":
        case "listenQueue":
          add(String(prop), ["(queue)"], 0, 0, by());
      }
      return value.bind(target);
    },
  });
}

const open = Deno.openKv.bind(Deno);
Object.defineProperty(Deno, "openKv", {
  value: async (path?: string) => counted(await open(path)),
  configurable: true,
  writable: true,
});

const out = Deno.env.get("KV_COUNT_FILE");
if (out) {
  Deno.addSignalListener("SIGUSR2", () => {
    Deno.writeTextFileSync(`${out}.tmp`, JSON.stringify(counts));
    Deno.renameSync(`${out}.tmp`, out);
  });
}

await import("../../main.ts");
