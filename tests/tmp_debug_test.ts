import { startRelay } from "./support/relay_process.ts";
import { startSink } from "./support/sink.ts";
Deno.test("debug", async () => {
  const sink = await startSink();
  await using relay = await startRelay({
    env: { POSTERN_ROUTES: `*=127.0.0.1:${sink.port}`, POSTERN_POLL_INTERVAL: "200ms" },
  });
  const res = await relay.api("/v1/messages", {
    body: { from: "app@origin.test", to: "complaint@simulator.postern.invalid", text: "x" },
  });
  console.log(res.status);
  await new Promise((r) => setTimeout(r, 5000));
  for (const l of relay.logs) {
    if (String(l.event).match(/sandbox|report|delivery|actor/)) console.log(JSON.stringify(l));
  }
  console.log(relay.stderr.slice(-2000));
  await sink.close();
});
