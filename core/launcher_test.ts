import assert from "node:assert/strict";
import { isLauncher } from "./launcher.ts";

Deno.test("the processes between npx and the relay count as launchers; shells and service managers do not", () => {
  assert.ok(isLauncher(["npm exec deno@2.9.6 task start"]));
  assert.ok(isLauncher(["sh", "-c", "deno task start"]));
  assert.ok(isLauncher(["/root/.npm/_npx/x/node_modules/deno/deno", "task", "start"]));
  assert.ok(isLauncher(["node", "/usr/bin/npx", "-y", "deno@2.9.6", "task", "start"]));
  assert.ok(!isLauncher(["bash"]));
  assert.ok(!isLauncher(["-bash"]));
  assert.ok(!isLauncher(["/sbin/init"]));
  assert.ok(!isLauncher(["/lib/systemd/systemd", "--system"]));
  assert.ok(!isLauncher(["deno", "test", "-A"]));
  assert.ok(!isLauncher(["nohup", "deno", "run", "main.ts"]));
});
