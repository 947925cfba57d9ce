/**
 * Stopping through a launcher. `npx -y deno@… task start` runs npm → `sh -c` → `deno task` →
 * this process. A SIGTERM to the npx process is passed by npm to the shell only, which dies
 * without passing it on: `deno task` (which does forward signals) and this process were left
 * running with their ports bound. So at start the chain of launcher processes above this one is
 * recorded, and if any of them goes away the relay stops as on SIGTERM.
 *
 * Only launchers are recorded (`deno task`, `sh -c`, npm/npx under node); an interactive shell,
 * nohup, systemd or a container's init ends the chain, so closing a terminal after
 * `nohup deno run … &` or a service manager restarting does not count. Linux only (/proc);
 * elsewhere nothing is watched.
 */

interface Ancestor {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells a reused pid from the process recorded. */
  startTime: string;
}

function readStat(pid: number): { ppid: number; startTime: string } | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(rest[1]), startTime: rest[19] ?? "" };
  } catch {
    return null;
  }
}

function readArgv(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** Whether a process's command line is one of the launchers between npx and this process. */
export function isLauncher(cmdline: readonly string[]): boolean {
  // A process that set its title (npm: "npm exec deno@2.9.6 task start") has one argument.
  const argv = cmdline.length === 1 ? cmdline[0]!.split(" ") : cmdline;
  const name = (argv[0] ?? "").split("/").pop() ?? "";
  if (name === "deno") return argv[1] === "task";
  if (["sh", "dash", "bash"].includes(name)) return argv[1] === "-c";
  if (name === "node") return /\/(npm|npx)(-cli\.js)?$/.test(argv[1] ?? "");
  // npm renames its process title: "npm exec deno@2.9.6 task start".
  return name === "npm" || name === "npx";
}

/** The launcher processes above `pid`, nearest first. */
export function launcherChain(pid: number): Ancestor[] {
  const chain: Ancestor[] = [];
  let current = readStat(pid)?.ppid ?? 0;
  while (current > 1 && chain.length < 8) {
    const stat = readStat(current);
    if (!stat || !isLauncher(readArgv(current))) break;
    chain.push({ pid: current, startTime: stat.startTime });
    current = stat.ppid;
  }
  return chain;
}

/**
 * Calls `onGone` once, when a process of the launcher chain has exited. Returns a stop
 * function; with no chain (run directly, by systemd, in a container) nothing is watched.
 */
export function watchLaunchers(
  onGone: (pid: number) => void,
  intervalMs = 1_000,
): { chain: number[]; stop(): void } {
  const chain = launcherChain(Deno.pid);
  if (chain.length === 0) return { chain: [], stop() {} };
  const timer = setInterval(() => {
    const gone = chain.find((a) => readStat(a.pid)?.startTime !== a.startTime);
    if (gone) {
      clearInterval(timer);
      onGone(gone.pid);
    }
  }, intervalMs);
  return { chain: chain.map((a) => a.pid), stop: () => clearInterval(timer) };
}
