import assert from "node:assert/strict";
import { checkTree } from "./check_deps.ts";

/** A throwaway source tree holding `files` (path → text). */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "check_deps_" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return `${root}/`;
}

const CLEAN = {
  "core/store/keys.ts": `export const keys = { message: (id: string) => ["msg", id] };\n`,
  "core/store/queue.ts": `import { keys } from "./keys.ts";\n` +
    `export async function loadMessage(kv: Deno.Kv, id: string) {\n` +
    `  return (await kv.get(keys.message(id))).value;\n}\n`,
  "http/messages.ts": `import { loadMessage } from "../core/store/queue.ts";\n` +
    `// kv.get(…) in a comment is no call\n` +
    `export const show = (kv: Deno.Kv, id: string) => loadMessage(kv, id);\n`,
  "tests/store_test.ts": `import { keys } from "../core/store/keys.ts";\n` +
    `export const peek = (kv: Deno.Kv) => kv.get(keys.message("x"));\n`,
  "actors/worker_test.ts": `export const peek = (kv: Deno.Kv) => kv.list({ prefix: [] });\n`,
  "main.ts": `export const kv = await Deno.openKv(":memory:");\n`,
};

Deno.test("the checker passes a tree where only core/store/ touches KV and tests inspect it", async () => {
  const root = await tree(CLEAN);
  try {
    assert.deepEqual(await checkTree(root), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the checker names the file and line of each KV call, keys import and store opened outside core/store/", async () => {
  const root = await tree({
    ...CLEAN,
    "actors/webhook.ts": `import { keys } from "../core/store/keys.ts";\n` +
      `export class A {\n  #deps = { kv: null as unknown as Deno.Kv };\n` +
      `  async m(id: string) {\n` +
      `    return (await this.#deps.kv.get<string>(keys.message(id))).value;\n  }\n}\n`,
    "http/events.ts": `export async function f(kv: Deno.Kv) {\n` +
      `  await kv.atomic().delete(["x"]).commit();\n}\n`,
    "core/intake.ts": `export const open = () => Deno.openKv();\n`,
  });
  try {
    const problems = await checkTree(root);
    assert.deepEqual(problems.toSorted(), [
      "actors/webhook.ts:1: imports core/store/keys.ts; only core/store/ may build KV keys",
      "actors/webhook.ts:5: calls kv.get() outside core/store/; " +
      "move it into a named function in core/store/",
      "core/intake.ts:1: opens a KV store; only main.ts and edge.ts may",
      "http/events.ts:2: calls kv.atomic() outside core/store/; " +
      "move it into a named function in core/store/",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the check task fails with the violation's file and line", async () => {
  const root = await tree({
    ...CLEAN,
    "http/routes.ts": `export const f = (kv: Deno.Kv) =>\n  kv.getMany([["a"]]);\n`,
  });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", new URL("./check_deps.ts", import.meta.url).pathname, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 1);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.match(stderr, /http\/routes\.ts:2: calls kv\.getMany\(\) outside core\/store\//);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the checker still refuses an import against the dependency direction", async () => {
  const root = await tree({
    ...CLEAN,
    "core/model.ts": `\nimport { show } from "../http/messages.ts";\nexport { show };\n`,
  });
  try {
    assert.deepEqual(await checkTree(root), [
      "core/model.ts:2: core/ imports http/messages.ts (the dependency direction forbids it)",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a stand-alone experiment beside the relay may keep its own store, but only while it imports none of Postern", async () => {
  const experiment = `export const kv = await Deno.openKv("x");\n` +
    `await kv.atomic().set(["q", 1], 1).commit();\n`;
  const alone = await tree({ ...CLEAN, "bench/floor_experiment.ts": experiment });
  const borrowing = await tree({
    ...CLEAN,
    "bench/floor_experiment.ts": `import { keys } from "../core/store/keys.ts";\n` + experiment,
  });
  try {
    assert.deepEqual(await checkTree(alone), []);
    assert.deepEqual((await checkTree(borrowing)).toSorted(), [
      "bench/floor_experiment.ts: a stand-alone experiment imports Postern's code",
      "bench/floor_experiment.ts:1: imports core/store/keys.ts; only core/store/ may build KV keys",
    ]);
  } finally {
    await Deno.remove(alone, { recursive: true });
    await Deno.remove(borrowing, { recursive: true });
  }
});
