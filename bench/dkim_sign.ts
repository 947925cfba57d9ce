/**
 * Micro-bench of DKIM signing as intake does it: N messages of SIZE bytes, 20 at a time (the
 * bench's sessions), each hashed, canonicalized and signed. Each message also spins the main
 * thread for RELAY_MS, standing in for the relay's own work per message (1.6 ms in issue 18's
 * profile), so the main thread is as busy as in a saturated relay and the msg/s show what signing
 * takes from it. Reports CPU ms per message for the whole process and for the main thread alone
 * (where the SMTP sessions, intake and the store run), and msg/s, beside the same loop unsigned.
 *
 * `deno run --allow-all bench/dkim_sign.ts [N=2000] [SIZE=2048] [WORKERS=cores] [RELAY_MS=1.6]`
 *
 * Linux only (the main thread's CPU time is read from /proc/self/task/<pid>/schedstat).
 *
 * @module
 */
import process from "node:process";
import {
  type DkimAlgorithm,
  DkimSigner,
  type DkimSigningKey,
  generateDkimKey,
} from "../core/mail/dkim.ts";
import { DkimPool } from "../core/mail/dkim_pool.ts";

const n = Number(Deno.args[0] ?? 2000);
const size = Number(Deno.args[1] ?? 2048);
const workers = Number(Deno.args[2] ?? navigator.hardwareConcurrency ?? 1);
const relayMs = Number(Deno.args[3] ?? 1.6);
const SESSIONS = 20;

const enc = new TextEncoder();
const head = enc.encode(
  "From: App <app@example.test>\r\nTo: someone@dest.test\r\nSubject: bench\r\n" +
    "Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <x@example.test>\r\n",
);
const line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
const body = enc.encode(line.repeat(Math.ceil(size / line.length)).slice(0, size));

/** The main thread's CPU time in ms (the scheduler's own count, in ns). */
function mainThreadMs(): number {
  const stat = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/schedstat`);
  return Number(stat.split(" ")[0]) / 1e6;
}

/** The relay's own work for one message: `relayMs` of CPU on the main thread (calibrated below). */
let spins = 1_000_000;
let sink = 0;
function relayWork() {
  let x = sink;
  for (let i = 0; i < spins; i++) x = (x * 31 + i) | 0;
  sink = x;
}
{
  const before = process.cpuUsage();
  for (let i = 0; i < 50; i++) relayWork();
  const used = process.cpuUsage(before);
  spins = Math.round(spins * relayMs / ((used.user + used.system) / 1000 / 50));
}

async function run(label: string, sign: () => Promise<unknown>) {
  const one = () => {
    relayWork();
    return sign();
  };
  // Warm-up: workers started, keys parsed, code compiled.
  await Promise.all(Array.from({ length: SESSIONS }, one));
  const cpu = process.cpuUsage();
  const main = mainThreadMs();
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: SESSIONS }, async () => {
    while (next++ < n) await one();
  }));
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const total = (used.user + used.system) / 1000 / n;
  const mainMs = (mainThreadMs() - main) / n;
  console.log(
    `${label.padEnd(26)} CPU ms/msg: process ${total.toFixed(3)}, main thread ${
      mainMs.toFixed(3)
    }; ${(n / wall * 1000).toFixed(0)} msg/s wall`,
  );
}

const keys = (algorithm: DkimAlgorithm): DkimSigningKey[] => [{
  domain: "example.test",
  selector: "s",
  algorithm,
  privateKey: generateDkimKey(algorithm).privateKey,
  version: "1",
}];

console.log(
  `${n} messages × ${size} B, ${SESSIONS} at a time, pool of ${workers} workers, ` +
    `relay work ${relayMs} ms/msg`,
);
await run("unsigned", () => Promise.resolve());
const pool = new DkimPool({ workers });
for (const algorithm of ["rsa", "ed25519"] as const) {
  const k = keys(algorithm);
  const sign = (maker?: DkimPool) => () => {
    const signer = new DkimSigner(k, maker);
    signer.update(body);
    return signer.sign(head, new Date());
  };
  await run(`${algorithm}, main thread`, sign());
  await run(`${algorithm}, worker pool`, sign(pool));
}
pool.close();
