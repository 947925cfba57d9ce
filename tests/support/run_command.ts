/**
 * Runs an outside program (swaks, python3, curl) from a test and collects its output.
 *
 * @module
 */

export interface RunCommandOptions {
  /** Written to the program's stdin, which is then closed. @default no stdin */
  stdin?: string;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  /** The program is killed (SIGKILL) after this long. @default 30000 */
  timeoutMs?: number;
  /** @default the current directory */
  cwd?: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Runs `cmd` with `args` and resolves with its exit code and output, whatever the code.
 *
 * Rejects with `Deno.errors.NotFound` when the program is not installed, and with an error
 * carrying the output so far when it outlives `timeoutMs`.
 */
export async function runCommand(
  cmd: string,
  args: string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot run '${cmd}' as it is not on the PATH`, {
        cause: error,
      });
    }
    throw error;
  }

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // Only the process we spawned, by its handle; its own children are its business.
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      // A program that exits without reading its input closes the pipe under us;
      // its exit code and output below say more than the write error would.
      await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
      await writer.close().catch(() => {});
    }
    const output = await child.output();
    const result = {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
    if (timedOut) {
      throw new Error(
        `Cannot finish '${cmd} ${args.join(" ")}' as it ran past ${timeoutMs} ms and was ` +
          `killed: stdout ${JSON.stringify(result.stdout)}, stderr ${
            JSON.stringify(result.stderr)
          }`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}
