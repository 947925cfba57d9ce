/**
 * TXT lookups through Deno's resolver, at the configured name server (POSTERN_DNS) when there is
 * one. A name without TXT records, or without any records, gives [].
 */
import type { TxtLookup } from "./dns_records.ts";

export function denoTxtLookup(nameServer?: { ipAddr: string; port: number }): TxtLookup {
  return async (name) => {
    try {
      const records = await Deno.resolveDns(name, "TXT", {
        ...(nameServer ? { nameServer } : {}),
        signal: AbortSignal.timeout(5000),
      });
      return records.map((strings) => strings.join(""));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
  };
}
