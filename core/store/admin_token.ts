/**
 * The admin token. Given in POSTERN_ADMIN_TOKEN, or generated on first start and printed once;
 * only its SHA-256 is stored (a 256-bit random token needs no slow hash).
 */
import { randomToken, sha256 } from "../auth/secrets.ts";
import { keys } from "./keys.ts";

export async function ensureAdminToken(
  kv: Deno.Kv,
  fromEnv: string | undefined,
): Promise<{ hash: string; printOnce?: string }> {
  if (fromEnv) return { hash: sha256(fromEnv) };
  const stored = await kv.get<{ hash: string }>(keys.adminToken());
  if (stored.value) return { hash: stored.value.hash };
  const token = "adm_" + randomToken(32);
  const res = await kv.atomic().check(stored).set(keys.adminToken(), { hash: sha256(token) })
    .commit();
  if (!res.ok) return ensureAdminToken(kv, fromEnv);
  return { hash: sha256(token), printOnce: token };
}

/**
 * Recovery (`deno task admin-token`): a new token replaces the stored one, for a relay that is
 * stopped (a running one keeps the hash it read at start). Returns the token, shown once.
 */
export async function issueAdminToken(kv: Deno.Kv): Promise<string> {
  const token = "adm_" + randomToken(32);
  await kv.set(keys.adminToken(), { hash: sha256(token) });
  return token;
}
