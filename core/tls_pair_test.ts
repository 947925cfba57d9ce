import assert from "node:assert/strict";
import selfsigned from "selfsigned";
import { checkTlsPair, TlsPairError } from "./tls_pair.ts";

const ORIGIN = { cert: "POSTERN_TLS_CERT", key: "POSTERN_TLS_KEY" };

async function pair(names: string[], notAfter?: Date) {
  const pems = await selfsigned.generate(
    [{ name: "commonName", value: names[0]! }],
    {
      keySize: 2048,
      algorithm: "sha256",
      ...(notAfter
        ? { notBeforeDate: new Date(notAfter.getTime() - 86_400_000), notAfterDate: notAfter }
        : {}),
      extensions: [{
        name: "subjectAltName",
        altNames: names.map((value) => ({ type: 2, value })),
      }],
    } as Parameters<typeof selfsigned.generate>[1],
  );
  return { cert: pems.cert, key: pems.private };
}

Deno.test("a matching pair tells its names and expiry; every broken one names the setting at fault", async () => {
  const now = Date.now();
  const good = await pair(["relay.test", "localhost"]);
  const other = await pair(["other.test"]);
  const facts = checkTlsPair(good, ORIGIN, now);
  assert.deepEqual(facts.names, ["relay.test", "localhost"]);
  assert.ok(facts.notAfter.getTime() > now);

  const refused = (p: { cert: string; key: string }, at = now) => {
    try {
      checkTlsPair(p, ORIGIN, at);
    } catch (err) {
      assert.ok(err instanceof TlsPairError);
      return err.message;
    }
    assert.fail("accepted");
  };
  assert.match(refused({ cert: good.cert, key: other.key }), /^POSTERN_TLS_KEY: .*does not match/);
  assert.match(refused({ cert: good.key, key: good.cert }), /^POSTERN_TLS_CERT: .*swapped/);
  assert.match(refused({ cert: "garbage", key: good.key }), /^POSTERN_TLS_CERT: .*not a PEM/);
  assert.match(refused({ cert: good.cert, key: "garbage" }), /^POSTERN_TLS_KEY: .*not a PEM/);
  assert.match(refused(good, facts.notAfter.getTime() + 1), /^POSTERN_TLS_CERT: .*expired/);
});
