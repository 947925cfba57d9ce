import assert from "node:assert/strict";
import { openSecretBox, SecretBox } from "./secret_box.ts";
import {
  createDomain,
  recordVerification,
  sealDomainKeys,
  signingKeysFor,
} from "../store/domains.ts";
import { keys } from "../store/keys.ts";

const material = (text: string) => new TextEncoder().encode(text);

Deno.test("a sealed value opens only under its key and for the record it was sealed for", async () => {
  const box = await SecretBox.fromMaterial(material("k".repeat(32)));
  const sealed = await box.seal("whsec_abc", "webhook:wh_1");
  assert.match(sealed, /^enc1:/);
  assert.ok(!sealed.includes("whsec_abc"));
  assert.notEqual(await box.seal("whsec_abc", "webhook:wh_1"), sealed, "a fresh IV each time");
  assert.equal(await box.open(sealed, "webhook:wh_1"), "whsec_abc");
  await assert.rejects(box.open(sealed, "webhook:wh_2"), "moved to another record");
  const other = await SecretBox.fromMaterial(material("j".repeat(32)));
  await assert.rejects(other.open(sealed, "webhook:wh_1"), /another key/);
  assert.equal(await box.open("whsec_legacy", "webhook:wh_1"), "whsec_legacy", "stored in clear");
});

Deno.test("openSecretBox() generates one key file, mode 0600, and reads it back on the next start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await openSecretBox({ dataDir: dir });
    assert.equal((await Deno.stat(`${dir}/secret.key`)).mode! & 0o777, 0o600);
    const second = await openSecretBox({ dataDir: dir });
    assert.equal(second.keyId, first.keyId);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["secret.key"]);
    const configured = await openSecretBox({ dataDir: dir, secretKey: "s".repeat(32) });
    assert.notEqual(configured.keyId, first.keyId, "POSTERN_SECRET_KEY wins over the file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DKIM keys stored in clear still sign, and are sealed by sealDomainKeys()", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const box = await SecretBox.fromMaterial(material("k".repeat(32)));
    const domain = await createDomain(kv, box, {
      account: "a",
      name: "ex.test",
      algorithms: ["rsa"],
    });
    assert.ok(domain !== "exists");
    await recordVerification(kv, domain.id, [{
      purpose: "dkim",
      name: `${domain.keys[0]!.selector}._domainkey.ex.test`,
      state: "verified",
      selector: domain.keys[0]!.selector,
    }]);
    const [signing] = await signingKeysFor(kv, box, "a", "ex.test", 0);
    assert.match(signing!.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    // As an older version stored it: the PEM itself.
    const entry = await kv.get<typeof domain>(keys.domain(domain.id));
    const clear = {
      ...entry.value!,
      keys: [{ ...entry.value!.keys[0]!, privateKey: signing!.privateKey }],
    };
    await kv.set(entry.key, clear);
    assert.equal(
      (await signingKeysFor(kv, box, "a", "ex.test", 10 ** 12))[0]!.privateKey,
      signing!.privateKey,
    );
    assert.equal(await sealDomainKeys(kv, box), 1);
    assert.equal(await sealDomainKeys(kv, box), 0, "nothing left in clear");
    const sealed = (await kv.get<typeof domain>(keys.domain(domain.id))).value!.keys[0]!
      .privateKey!;
    assert.match(sealed, /^enc1:/);
    assert.equal(
      (await signingKeysFor(kv, box, "a", "ex.test", 2 * 10 ** 12))[0]!.privateKey,
      signing!.privateKey,
    );
  } finally {
    kv.close();
  }
});
