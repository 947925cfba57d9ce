/**
 * Where the relay's certificate comes from, read and checked as one step, at start and at every
 * reload (SIGHUP, or the files changing): POSTERN_TLS_CERT / POSTERN_TLS_KEY, or the generated
 * development certificate in the data directory.
 */
import { loadOrCreateDevCertificate } from "./dev_tls.ts";
import {
  type CertificateFacts,
  checkTlsPair,
  type TlsOrigin,
  type TlsPair,
  TlsPairError,
} from "./tls_pair.ts";

export interface TlsSource {
  /** The files, as configured (a symlink is followed at each read). */
  certPath: string;
  keyPath: string;
  /** The settings errors name. */
  origin: TlsOrigin;
  /** True for the generated development certificate. */
  generated: boolean;
}

export interface LoadedTls {
  pair: TlsPair;
  facts: CertificateFacts;
}

export { TlsPairError } from "./tls_pair.ts";

const CONFIGURED: TlsOrigin = { cert: "POSTERN_TLS_CERT", key: "POSTERN_TLS_KEY" };

/**
 * The configured pair, or the development certificate (made or renewed here). Throws
 * TlsPairError with one line naming the setting.
 */
export async function openTlsSource(
  settings: { tlsCert?: string | undefined; tlsKey?: string | undefined },
  dev: { dataDir: string; hostname: string; now: number },
): Promise<{ source: TlsSource; loaded: LoadedTls }> {
  if (settings.tlsCert || settings.tlsKey) {
    if (!settings.tlsCert || !settings.tlsKey) {
      throw new TlsPairError("POSTERN_TLS_CERT and POSTERN_TLS_KEY must be set together");
    }
    const source = {
      certPath: settings.tlsCert,
      keyPath: settings.tlsKey,
      origin: CONFIGURED,
      generated: false,
    };
    return { source, loaded: await loadTls(source, dev.now) };
  }
  const made = await loadOrCreateDevCertificate(dev.dataDir, dev.hostname, dev.now);
  const source = {
    certPath: made.certPath,
    keyPath: made.keyPath,
    origin: { cert: made.certPath, key: made.keyPath },
    generated: true,
  };
  return { source, loaded: await loadTls(source, dev.now) };
}

/** Reads both files and checks them as a pair. */
export async function loadTls(source: TlsSource, now: number): Promise<LoadedTls> {
  const read = async (path: string, setting: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new TlsPairError(
        `${setting}: cannot read ${path} (${(err as Error).name}: ${(err as Error).message})`,
      );
    }
  };
  const pair = {
    cert: await read(source.certPath, source.origin.cert),
    key: await read(source.keyPath, source.origin.key),
  };
  const origin = source.generated ? source.origin : {
    cert: `${source.origin.cert} (${source.certPath})`,
    key: `${source.origin.key} (${source.keyPath})`,
  };
  return { pair, facts: checkTlsPair(pair, origin, now) };
}

/**
 * Calls `onChange` (debounced) when either file, or the directory entry a symlink such as
 * certbot's `live/` points through, changes. The directories are watched, not the files, so a
 * file replaced by rename is still seen.
 */
export function watchTlsFiles(
  source: TlsSource,
  onChange: () => void,
  debounceMs = 500,
): { close(): void } {
  const dirs = [...new Set([source.certPath, source.keyPath].map(parentDir))];
  const names = new Set([source.certPath, source.keyPath].map(baseName));
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs(dirs, { recursive: false });
  } catch {
    return { close() {} }; // no watcher here (SIGHUP still reloads)
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    try {
      for await (const event of watcher) {
        if (!event.paths.some((path) => names.has(baseName(path)))) continue;
        clearTimeout(timer);
        timer = setTimeout(onChange, debounceMs);
      }
    } catch {
      // closed
    }
  })();
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
