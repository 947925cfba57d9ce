/**
 * Secrets a page shows once: a new credential's password, a new webhook signing secret. They
 * are held in this process's memory only, for the session that made them, until the next page
 * shows them or a few minutes pass. A reload finds nothing, and the store never holds them.
 */
import { randomToken, sha256 } from "../../core/auth/secrets.ts";

const TTL_MS = 5 * 60_000;
const MAX_HELD = 1_000;

export class OneTimeReveals<T> {
  #held = new Map<string, { owner: string; until: number; value: T }>();

  put(sessionToken: string, value: T, now = Date.now()): string {
    for (const [id, item] of this.#held) if (item.until <= now) this.#held.delete(id);
    if (this.#held.size >= MAX_HELD) this.#held.delete(this.#held.keys().next().value!);
    const id = randomToken(12);
    this.#held.set(id, { owner: sha256(sessionToken), until: now + TTL_MS, value });
    return id;
  }

  /** The value once, to the session that put it; null after that or for anyone else. */
  take(sessionToken: string, id: string, now = Date.now()): T | null {
    const item = this.#held.get(id);
    if (!item || item.owner !== sha256(sessionToken)) return null;
    this.#held.delete(id);
    return item.until > now ? item.value : null;
  }
}
