/**
 * The DKIM signing worker (core/mail/dkim_worker.ts) with a real fault: a request whose first
 * signing input contains `crash-always` throws an uncaught error in the worker, every time; one
 * with `crash-once` does so only in a worker's first incarnation (its name ends in `-0`). Other
 * requests are signed by the real worker code. `hang-once` is never answered by a first
 * incarnation.
 *
 * @module
 */
const scope = globalThis as unknown as {
  name: string;
  addEventListener(
    type: "message",
    listener: (e: MessageEvent<{ data: Uint8Array[] }>) => void,
  ): void;
};

scope.addEventListener("message", (e) => {
  const text = new TextDecoder().decode(e.data.data[0]);
  if (text.includes("crash-always") || (text.includes("crash-once") && scope.name.endsWith("-0"))) {
    e.stopImmediatePropagation();
    throw new Error("the worker broke");
  }
  if (text.includes("hang-once") && scope.name.endsWith("-0")) {
    e.stopImmediatePropagation(); // and never answers
  }
});

// Loaded after the listener above, so that listener runs first.
await import("../../core/mail/dkim_worker.ts");
