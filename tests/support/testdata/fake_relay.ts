/**
 * A stand-in for main.ts that keeps its process contract (POSTERN_* env in, JSON log
 * lines out, `ready` once listening, a clean exit on SIGTERM), so relay_process_test.ts
 * can exercise startRelay() without the real relay. FAKE_RELAY_MODE picks a misbehaviour.
 *
 * @module
 */

const env = Deno.env.toObject();
const mode = env.FAKE_RELAY_MODE ?? "normal";
const hostname = env.POSTERN_LISTEN ?? "127.0.0.1";

function log(event: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ event, ...fields }));
}

if (mode === "crash_before_ready") {
  console.error("fake relay: configuration is invalid");
  Deno.exit(3);
}

// Counts boots in the data dir, so a test can see a restart reuse it.
const bootsFile = `${env.POSTERN_DATA_DIR}/boots`;
const boots = Number(await Deno.readTextFile(bootsFile).catch(() => "0")) + 1;
await Deno.writeTextFile(bootsFile, String(boots));

if (mode === "noisy") {
  // Far more than a pipe buffer holds: the parent must drain stdout while we write.
  const filler = "x".repeat(1000);
  for (let i = 0; i < 5000; i++) log("noise", { i, filler });
  console.log("this line is not JSON");
}

const smtp = Deno.listen({ hostname, port: Number(env.POSTERN_SMTP_PORT) });
const http = Deno.serve({
  hostname,
  port: Number(env.POSTERN_HTTP_PORT),
  // The default prints "Listening on …" to stdout, which is not a JSON log line.
  onListen() {},
}, async (request: Request) => {
  if (request.headers.get("authorization") !== `Bearer ${env.POSTERN_ADMIN_TOKEN}`) {
    return Response.json({ error: "unauthorized" }, { status: 401 });
  }
  const body = request.body === null ? null : await request.json();
  return Response.json({ method: request.method, path: new URL(request.url).pathname, body });
});

Deno.addSignalListener("SIGTERM", async () => {
  if (mode === "ignore_sigterm") return log("sigterm_ignored");
  log("stopping");
  smtp.close();
  await http.shutdown();
  Deno.exit(0);
});

if (mode !== "never_ready") {
  log("ready", {
    boots,
    hostname: env.POSTERN_HOSTNAME,
    extra: env.FAKE_RELAY_EXTRA ?? null,
    inherited_postern: env.POSTERN_LEAK ?? null,
  });
}
for await (const connection of smtp) connection.close();
