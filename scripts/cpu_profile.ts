/**
 * CPU profile of a running relay's main thread, for the throughput work (issue 18): where the
 * time of a message goes, not how many messages a noisy machine happened to pass.
 *
 *   deno run -A --unstable-kv --inspect=127.0.0.1:9229 main.ts          # the relay, under load
 *   deno run -A scripts/cpu_profile.ts record 9229 relay.cpuprofile 60  # samples for 60 s
 *   deno run -A scripts/cpu_profile.ts summary relay.cpuprofile         # shares of busy time
 *
 * A bench mode as the bench drives it: `BENCH_RELAY_INSPECT=9239 deno task bench --n 8000 …` starts
 * the relay with the inspector on 9239; record a window that sits inside the load.
 *
 * `record` talks to the inspector (Chrome DevTools protocol) and writes a .cpuprofile that
 * DevTools can open too; `summary` sorts each sample by the frame it ran in (self time) into the
 * groups the profile names, then lists the costliest functions.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

async function record(port: string, out: string, seconds: number) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve) => ws.onopen = resolve);
  const pending = new Map<number, (result: unknown) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    pending.get(m.id)?.(m.result);
  };
  let next = 0;
  const call = (method: string, params: unknown = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 500 });
  await call("Profiler.start");
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const { profile } = await call("Profiler.stop") as { profile: Profile };
  await Deno.writeTextFile(out, JSON.stringify(profile));
  ws.close();
}

/** The group a sample counts for: by the frame it ran in, then by what called it. */
function group(frame: CallFrame, stack: CallFrame[]): string {
  const { functionName: fn, url } = frame;
  const under = (re: RegExp) => stack.some((f) => re.test(`${f.url} ${f.functionName}`));
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "V8 (program)";
  if (under(/core\/log\.ts/)) return "logging";
  if (/^op_kv|ext:deno_kv|core\/store\//.test(fn + url) || under(/core\/store\/|ext:deno_kv/)) {
    return "KV";
  }
  if (/smtp-server/.test(url)) return "smtp-server JS";
  if (/nodemailer/.test(url)) return "nodemailer JS";
  if (
    /ext:deno_node/.test(url) ||
    /^(writeUtf8String|writeBuffer|writev|close|shutdown|get(peer|sock)name|setNoDelay)$/.test(fn)
  ) {
    return "Node-compat socket and stream layer (socket writes included)";
  }
  if (/core\/(intake|mail|content)\//.test(url) || /core\/intake\.ts/.test(url)) {
    return "intake and header parsing";
  }
  return "other";
}

const REPO = new URL("../", import.meta.url).href;

function summary(file: string, top: number) {
  const profile: Profile = JSON.parse(Deno.readTextFileSync(file));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  });
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") continue;
    busy += us;
    const stack: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      stack.push(byId.get(at)!.callFrame);
    }
    const g = group(frame, stack);
    groups.set(g, (groups.get(g) ?? 0) + us);
    const where = frame.url.replace(/^.*node_modules\/\.deno\//, "npm:").replace(REPO, "");
    const name = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const pct = (us: number) => `${(100 * us / busy).toFixed(1).padStart(5)} %`;
  console.log(`busy ${(busy / 1e6).toFixed(2)} s of the main thread`);
  for (const [g, us] of [...groups].sort((a, b) => b[1] - a[1])) console.log(pct(us), g);
  console.log("\nfunctions by self time:");
  for (const [f, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(pct(us), f);
  }
}

const [command, a, b, c] = Deno.args;
if (command === "record" && a && b) await record(a, b, Number(c ?? 60));
else if (command === "summary" && a) summary(a, Number(b ?? 15));
else {
  console.error("usage: cpu_profile.ts record PORT OUT.cpuprofile [SECONDS] | summary FILE [TOP]");
  Deno.exit(2);
}
