/**
 * Keeps two rules of docs/ARCHITECTURE.md that review alone lets slip. The dependency direction:
 * smtp/ and http/ import only core/ (never each other), actors/ imports core/ and delivery/,
 * delivery/ imports core/ only, core/ imports none of them, and nothing imports main.ts. And the
 * store boundary: only core/store/ touches KV — no KV method calls and no imports of
 * core/store/keys.ts elsewhere, and only main.ts and edge.ts open a store. Tests (tests/ and
 * *_test.ts) may read KV directly to inspect what the code stored, and a stand-alone experiment
 * that measures the stack without Postern (it imports none of it) may keep its own store.
 *
 * Run by `deno task check`; `deno run --allow-read scripts/check_deps.ts [root]` checks another
 * tree (its own test does).
 */
const ALLOWED: Record<string, string[]> = {
  core: ["core"],
  smtp: ["core", "smtp"],
  http: ["core", "http"],
  delivery: ["core", "delivery"],
  actors: ["core", "delivery", "actors"],
};
const SKIPPED_DIRS = new Set(["node_modules", "data", "tests", ".git"]);
const STORE = "core/store/";
const KEYS = "core/store/keys.ts";
/** The entry points that open the store and hand it to everything else. */
const OPENERS = new Set(["main.ts", "edge.ts"]);
/** Programs beside the relay, not of it: their own store, none of Postern's code. */
const STANDALONE = new Set(["bench/floor_experiment.ts"]);

const IMPORT =
  /(?:import|export)\s[^"']*?from\s+["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
/** A method call on a KV handle: `kv.get(`, `this.#kv.atomic()`, `deps.kv.list<T>(`, … */
const KV_CALL =
  /(?:^|[^\w$])((?:#?\w*[kK]v)\s*\.\s*(?:get|getMany|set|list|atomic|delete|watch|enqueue|listenQueue|commit))\s*[<(]/;
const OPEN_KV = /\bDeno\s*\.\s*openKv\s*\(/;

async function* walk(root: string, dir = ""): AsyncGenerator<string> {
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}${e.name}`;
    if (e.isDirectory) {
      if (!SKIPPED_DIRS.has(e.name) && !e.name.startsWith(".")) yield* walk(root, `${path}/`);
    } else if (/\.tsx?$/.test(e.name) && !/_test\.tsx?$/.test(e.name)) yield path;
  }
}

/** The line of `text` that holds offset `at`, counting from 1. */
function lineAt(text: string, at: number): number {
  let line = 1;
  for (let i = 0; i < at; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Whether a line is (part of) a comment, where mentioning a call is no call. */
function isComment(line: string): boolean {
  const t = line.trimStart();
  return t.startsWith("//") || t.startsWith("*") || t.startsWith("/*");
}

/** Every violation under `root` (a path ending in "/"), as "file:line: what is wrong". */
export async function checkTree(root: string): Promise<string[]> {
  const problems: string[] = [];
  for await (const file of walk(root)) {
    const text = await Deno.readTextFile(`${root}${file}`);
    const layer = file.split("/")[0]!;
    const inStore = file.startsWith(STORE);
    let importsPostern = false;
    for (const m of text.matchAll(IMPORT)) {
      importsPostern = true;
      const spec = m[1] ?? m[2]!;
      const target = new URL(spec, `file:///${file}`).pathname.slice(1);
      const top = target.split("/")[0]!;
      const where = `${file}:${lineAt(text, m.index)}`;
      if (target === "main.ts") problems.push(`${where}: imports main.ts`);
      else if (layer in ALLOWED && top in ALLOWED && !ALLOWED[layer]!.includes(top)) {
        problems.push(
          `${where}: ${layer}/ imports ${target} (the dependency direction forbids it)`,
        );
      }
      if (target === KEYS && !inStore) {
        problems.push(`${where}: imports ${KEYS}; only ${STORE} may build KV keys`);
      }
    }
    if (inStore) continue;
    if (STANDALONE.has(file)) {
      if (importsPostern) {
        problems.push(`${file}: a stand-alone experiment imports Postern's code`);
      }
      continue;
    }
    text.split("\n").forEach((line, i) => {
      if (isComment(line)) return;
      const call = KV_CALL.exec(line);
      if (call) {
        problems.push(
          `${file}:${i + 1}: calls ${call[1]!.replace(/\s+/g, "")}() outside ${STORE}; ` +
            `move it into a named function in ${STORE}`,
        );
      }
      if (OPEN_KV.test(line) && !OPENERS.has(file)) {
        problems.push(`${file}:${i + 1}: opens a KV store; only main.ts and edge.ts may`);
      }
    });
  }
  return problems;
}

if (import.meta.main) {
  const arg = Deno.args[0];
  const root = arg
    ? (arg.endsWith("/") ? arg : `${arg}/`)
    : new URL("../", import.meta.url).pathname;
  const problems = await checkTree(root);
  if (problems.length > 0) {
    console.error(
      `Architecture rules violated (scripts/check_deps.ts):\n  ${problems.join("\n  ")}`,
    );
    Deno.exit(1);
  }
  console.log("dependency direction and store boundary ok");
}
