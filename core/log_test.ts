import assert from "node:assert/strict";
import { createLogger, LineBuffer } from "./log.ts";

const decoder = new TextDecoder();

Deno.test("log lines written in one burst leave stdout in one write", async () => {
  const writes: string[] = [];
  let wrote!: () => void;
  const written = new Promise<void>((r) => wrote = r);
  const buffer = new LineBuffer((bytes) => {
    writes.push(decoder.decode(bytes));
    wrote();
  });
  const log = createLogger({ write: (line, urgent) => buffer.push(line, urgent) });
  for (let i = 0; i < 100; i++) log.info("smtp.accepted", { msg: `m${i}` });
  assert.deepEqual(writes.length, 0);
  await written;
  assert.deepEqual(writes.length, 1);
  const lines = writes[0]!.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.msg), Array.from({ length: 100 }, (_, i) => `m${i}`));
});

Deno.test("a warning is written at once, after the lines logged before it", () => {
  const writes: string[] = [];
  const buffer = new LineBuffer((bytes) => writes.push(decoder.decode(bytes)));
  const log = createLogger({ write: (line, urgent) => buffer.push(line, urgent) });
  log.info("first");
  log.warn("second");
  assert.deepEqual(writes.length, 1);
  assert.deepEqual(writes[0]!.trimEnd().split("\n").map((l) => JSON.parse(l).event), [
    "first",
    "second",
  ]);
  buffer.flush();
});

async function runLogging(ending: string) {
  const script = `
    import { createLogger } from ${JSON.stringify(new URL("./log.ts", import.meta.url).href)};
    const log = createLogger();
    for (let i = 0; i < 50; i++) log.info("line", { i });
    ${ending}
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "null",
  }).output();
  return decoder.decode(out.stdout).trimEnd().split("\n").map((l) => JSON.parse(l).i);
}

const all = Array.from({ length: 50 }, (_, i) => i);

Deno.test("every log line reaches stdout when the relay exits with Deno.exit", async () => {
  assert.deepEqual(await runLogging("Deno.exit(0);"), all);
});

Deno.test("every log line reaches stdout when the process ends on its own", async () => {
  assert.deepEqual(await runLogging(""), all);
});

Deno.test("log lines written before an uncaught error still reach stdout", async () => {
  assert.deepEqual(await runLogging("setTimeout(() => { throw new Error('boom'); }, 0);"), all);
});
