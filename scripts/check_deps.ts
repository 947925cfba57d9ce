/**
 * Keeps the dependency direction of docs/ARCHITECTURE.md: smtp/ and http/ import only core/ (never each
 * other), actors/ imports core/ and delivery/, delivery/ imports core/ only, core/ imports none of
 * them, and nothing imports main.ts. Run by `deno task check`.
 */
const ROOT = new URL("../", import.meta.url).pathname;
const ALLOWED: Record<string, string[]> = {
  core: ["core"],
  smtp: ["core", "smtp"],
  http: ["core", "http"],
  delivery: ["core", "delivery"],
  actors: ["core", "delivery", "actors"],
};

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(path);
    else if (/\.tsx?$/.test(e.name) && !/_test\.tsx?$/.test(e.name)) yield path;
  }
}

const IMPORT =
  /(?:import|export)\s[^"']*?from\s+["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
const problems: string[] = [];
for (const layer of Object.keys(ALLOWED)) {
  for await (const file of walk(`${ROOT}${layer}`)) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2]!;
      const target = new URL(spec, `file://${file}`).pathname.slice(ROOT.length);
      const top = target.split("/")[0]!;
      if (target === "main.ts") problems.push(`${file.slice(ROOT.length)} imports main.ts`);
      else if (top in ALLOWED && !ALLOWED[layer]!.includes(top)) {
        problems.push(`${file.slice(ROOT.length)} (${layer}/) imports ${target}`);
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`Dependency direction violated:\n  ${problems.join("\n  ")}`);
  Deno.exit(1);
}
console.log("dependency direction ok");
