/**
 * The key VERP tags are made with: generated once per store and shared by every node, so a
 * bounce is recognised whichever node receives it. Whoever holds it can forge reports, so it is
 * stored sealed like the other secrets (core/auth/secret_box.ts); a key stored in clear by an
 * older version is kept, and sealed.
 */
import { keys } from "./keys.ts";
import { randomToken } from "../auth/secrets.ts";
import { SecretBox } from "../auth/secret_box.ts";

const CONTEXT = "verp_key";

export async function ensureVerpKey(kv: Deno.Kv, box: SecretBox): Promise<string> {
  for (;;) {
    const entry = await kv.get<{ key: string }>(keys.verpKey());
    if (entry.value && SecretBox.isSealed(entry.value.key)) {
      return await box.open(entry.value.key, CONTEXT);
    }
    const key = entry.value?.key ?? randomToken(32);
    const sealed = await box.seal(key, CONTEXT);
    const res = await kv.atomic().check(entry).set(keys.verpKey(), { key: sealed }).commit();
    if (res.ok) return key;
  }
}
