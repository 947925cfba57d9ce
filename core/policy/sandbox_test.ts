import assert from "node:assert/strict";
import {
  deliveryBehavior,
  isPresuppressed,
  sandboxTable,
  simulatorLocal,
  submissionFault,
} from "./sandbox.ts";

const SIM = "simulator.postern.invalid";

Deno.test("a +suffix is kept apart from the behaviour it names, in any case", () => {
  assert.equal(simulatorLocal("Bounce+Order42@Simulator.Postern.Invalid", SIM), "bounce");
  assert.equal(deliveryBehavior("bounce+order42@simulator.postern.invalid", SIM), "bounce");
  assert.equal(simulatorLocal("bounce@example.com", SIM), null);
});

Deno.test("test-mode mail to a real address, or an unknown simulator local part, is delivered", () => {
  assert.equal(deliveryBehavior("bounce@example.com", SIM), "delivered");
  assert.equal(deliveryBehavior(`whoever@${SIM}`, SIM), "delivered");
  assert.equal(isPresuppressed(`suppressed+x@${SIM}`, SIM), true);
  assert.equal(isPresuppressed("suppressed@example.com", SIM), false);
});

Deno.test("a recipient's submission fault wins over the credential's setting", () => {
  assert.equal(submissionFault([`smtp-552@${SIM}`], SIM, "smtp-451"), "smtp-552");
  assert.equal(submissionFault(["a@example.com"], SIM, "smtp-451"), "smtp-451");
  assert.equal(submissionFault(["a@example.com", `delivered@${SIM}`], SIM, null), null);
});

Deno.test("the table lists every address once, with the windows it was given", () => {
  const table = sandboxTable({ greylistMs: 1_000, slowMs: 1_500 });
  const locals = table.map((e) => e.local);
  assert.equal(new Set(locals).size, locals.length);
  assert.equal(locals.length, 15);
  assert.match(table.find((e) => e.local === "greylist")!.reply, /in 1 seconds/);
});
