/**
 * `deno task admin-token`: issues a new admin token into the store of a stopped relay, for when
 * the one printed at first start is lost. Reads the same settings as the relay (POSTERN_DATA_DIR,
 * POSTERN_KV, POSTERN_CONFIG) and prints the token once on stdout.
 */
import { ConfigError, loadConfig } from "../core/config/load.ts";
import { openKvFile } from "../core/store/kv_file.ts";
import { issueAdminToken } from "../core/store/admin_token.ts";
import { dataDirInUse } from "../core/node_id.ts";

function fail(message: string): never {
  console.error(`postern admin-token: ${message}`);
  Deno.exit(2);
}

let config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}
if (config.adminToken) {
  fail("POSTERN_ADMIN_TOKEN is set: the relay uses that token; unset it to use a stored one");
}
const path = config.kv ?? `${config.dataDir}/postern.kv`;
const remote = /^[a-z]+:\/\//i.test(path);
if (!remote) {
  try {
    await Deno.stat(path);
  } catch {
    fail(`no store at ${path}; start the relay once (or set POSTERN_DATA_DIR / POSTERN_KV)`);
  }
  if (await dataDirInUse(config.dataDir)) {
    fail(`a relay is running on ${config.dataDir}; stop it first (it keeps the token it read)`);
  }
}
const kv = await openKvFile(path);
const token = await issueAdminToken(kv);
kv.close();
console.log(token);
console.error(
  "New admin token above (shown once; the previous one no longer works). Start the relay and " +
    "sign in with it.",
);
