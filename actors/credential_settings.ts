/**
 * The delivery side's view of a credential: its IP pool and whether its bounces get a DSN.
 * Cached briefly per credential, so a site actor asks KV at most once a minute per credential,
 * never once per message.
 */
import { getCredential } from "../core/store/credentials.ts";

export interface CredentialSettings {
  pool: string | null;
  dsn: boolean;
}

const DEFAULTS: CredentialSettings = { pool: null, dsn: true };

export class CredentialSettingsCache {
  #kv: Deno.Kv;
  #now: () => number;
  #ttlMs: number;
  #cache = new Map<string, { value: CredentialSettings; until: number }>();

  constructor(kv: Deno.Kv, now: () => number, ttlMs = 60_000) {
    this.#kv = kv;
    this.#now = now;
    this.#ttlMs = ttlMs;
  }

  async get(credentialId: string | null): Promise<CredentialSettings> {
    if (credentialId === null) return DEFAULTS;
    const hit = this.#cache.get(credentialId);
    if (hit && hit.until > this.#now()) return hit.value;
    const c = await getCredential(this.#kv, credentialId);
    // Read field by field: records written before these fields existed lack them.
    const value: CredentialSettings = {
      pool: (c as { pool?: string | null } | null)?.pool ?? null,
      dsn: (c as { dsn?: boolean } | null)?.dsn !== false,
    };
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(credentialId, { value, until: this.#now() + this.#ttlMs });
    return value;
  }
}
