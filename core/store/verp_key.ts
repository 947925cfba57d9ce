/**
 * The key VERP tags are made with: generated once per store and shared by every node, so a
 * bounce is recognised whichever node receives it.
 */
import { keys } from "./keys.ts";
import { randomToken } from "../auth/secrets.ts";

export async function ensureVerpKey(kv: Deno.Kv): Promise<string> {
  for (;;) {
    const entry = await kv.get<{ key: string }>(keys.verpKey());
    if (entry.value) return entry.value.key;
    const key = randomToken(32);
    const res = await kv.atomic().check(entry).set(keys.verpKey(), { key }).commit();
    if (res.ok) return key;
  }
}
