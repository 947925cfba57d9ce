/**
 * Which key seals the store's secrets: the first node records its key's id, and every node
 * after it compares its own against that record.
 */
import { keys } from "./keys.ts";

/** The id recorded in the store, recording `id` first if none is. */
export async function claimSecretKeyId(kv: Deno.Kv, id: string): Promise<string> {
  for (;;) {
    const entry = await kv.get<{ id: string }>(keys.secretKeyId());
    if (entry.value) return entry.value.id;
    const res = await kv.atomic().check(entry).set(keys.secretKeyId(), { id }).commit();
    if (res.ok) return id;
  }
}
