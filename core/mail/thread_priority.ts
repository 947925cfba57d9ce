/**
 * Lowers the scheduling priority of the calling thread, for the DKIM signing workers
 * (dkim_worker.ts). On a machine whose cores are all busy, each request the main thread posted
 * woke a worker that then took the core from the main thread: under RSA-signed load on two cores
 * the main thread's profile put 0.11 ms per message inside `postMessage` (0.03 ms with the
 * workers lowered), and the main thread is what limits the relay. Lowered, a worker still has
 * any idle core to itself, and when the main thread waits for signatures it is idle too.
 *
 * Linux only: there `setpriority(PRIO_PROCESS, 0, …)` sets the nice value of the calling thread
 * alone; elsewhere it would lower the whole relay, so nothing is done. Needs FFI (as the OpenSSL
 * signer does); without it, or without glibc or musl, the thread keeps its priority.
 *
 * @module
 */

/**
 * Calls into the C library on the calling thread: `use` gets its `symbols` and says whether the
 * call succeeded. Linux only, and only with FFI granted (asked first: without the permission,
 * dlopen would prompt on a terminal); false where it could not, and the thread is left as it is.
 */
function withLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  use: (libc: Deno.DynamicLibrary<S>["symbols"]) => boolean,
): boolean {
  if (Deno.build.os !== "linux") return false;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return false;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      const libc = Deno.dlopen(name, symbols);
      const done = use(libc.symbols);
      libc.close();
      return done;
    } catch {
      // Not this C library, or no FFI.
    }
  }
  return false;
}

/**
 * Names the calling thread as `top -H` and /proc/<pid>/task/<tid>/comm show it (at most 15
 * bytes): Deno calls every worker thread `worker-N`, so a background thread says what it does.
 */
export function nameThread(name: string): boolean {
  const bytes = new TextEncoder().encode(`${name.slice(0, 15)}\0`);
  return withLibc({
    pthread_self: { parameters: [], result: "usize" },
    pthread_setname_np: { parameters: ["usize", "buffer"], result: "i32" },
  }, (libc) => libc.pthread_setname_np(libc.pthread_self(), bytes) === 0);
}

/** The nice value the signing workers run at (0 normal, 19 lowest). */
export const WORKER_NICE = 10;

const PRIO_PROCESS = 0;

/** Gives the calling thread the nice value `nice`; false where it could not. */
export function lowerThreadPriority(nice = WORKER_NICE): boolean {
  return withLibc(
    { setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" } },
    (libc) => libc.setpriority(PRIO_PROCESS, 0, nice) === 0,
  );
}
