/**
 * The README as a new user meets it: it opens with its title, one paragraph and the two commands;
 * what it says the test suite needs is what CI installs; its send examples run as pasted.
 */
import assert from "node:assert/strict";
import { repoRoot, runCommand, startRelay } from "./support/relay_process.ts";
import { createCredential } from "./support/relay_api.ts";

const readme = await Deno.readTextFile(`${repoRoot}/README.md`);

Deno.test("the README opens with its title, one paragraph saying what Postern is, then the two commands", () => {
  const blocks = readme.split(/\n\n+/);
  assert.equal(blocks[0], "# Postern");
  assert.match(blocks[1]!, /^Postern is /);
  assert.ok(!blocks[1]!.includes("```"), "one paragraph, then the commands");
  assert.equal(
    blocks[2],
    "```sh\nnpx -y deno@2.9.6 task start\nnpx -y deno@2.9.6 task test\n```",
  );
});

Deno.test("the README's list of what the test suite needs matches what .ci/run installs", async () => {
  const ci = await Deno.readTextFile(`${repoRoot}/.ci/run`);
  // Every package .ci/run may install with apt: need+=(a b c).
  const packages = [...ci.matchAll(/need\+=\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(/\s+/))
    .filter(Boolean);
  assert.ok(packages.length >= 8, packages.join(" "));
  const intro = readme.slice(0, readme.indexOf("## "));
  for (const name of new Set(packages)) {
    assert.ok(intro.includes(`\`${name}\``), `the README's opening names ${name}`);
  }
});

Deno.test("the README's send examples run as pasted and are queued", async () => {
  await using relay = await startRelay();
  const credential = await createCredential(relay, "shop");
  const section = readme.slice(readme.indexOf("## Send API"), readme.indexOf("- The message"));
  const scripts = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.equal(scripts.length, 2);
  for (const script of scripts) {
    // The user's own key in place of the placeholder, and this relay's port.
    const pasted = script.replace(/^KEY=pst_….*$/m, `KEY=${credential.password}`)
      .replaceAll("127.0.0.1:8080", `127.0.0.1:${relay.httpPort}`);
    // Pasted into the same shell: the second example uses the first one's KEY.
    const result = await runCommand("bash", ["-c", pasted], { env: { KEY: credential.password } });
    assert.equal(result.code, 0, result.stderr);
    const id = JSON.parse(result.stdout).id;
    assert.match(id, /^[0-9A-Z]{26}$/, result.stdout);
    const message = await relay.api(`/v1/messages/${id}`);
    assert.equal(message.status, 200);
  }
});
