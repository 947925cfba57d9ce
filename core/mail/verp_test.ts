import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { parseVerp, returnPathFor, verpAddress } from "./verp.ts";

const verp = { domain: "bounces.example.com", key: "k1" };
const ID = "01M8243SC15XT4CADKRFNZRH11";

Deno.test("parseVerp() reads back the message id and recipient of verpAddress(), case-insensitively", () => {
  const address = verpAddress(ID, 3, verp);
  assert.match(address, /^b-01m8243sc15xt4cadkrfnzrh11-3-[0-9a-f]{16}@bounces\.example\.com$/);
  assert.deepEqual(parseVerp(address, verp), { msgId: ID, idx: 3 });
  assert.deepEqual(parseVerp(address.toUpperCase(), verp), { msgId: ID, idx: 3 });
});

Deno.test("parseVerp() calls a forged tag, another recipient's index, another key forged; other domains are not VERP", () => {
  const address = verpAddress(ID, 0, verp);
  assert.equal(parseVerp(address.replace(/-[0-9a-f]{16}@/, "-0000000000000000@"), verp), "forged");
  assert.equal(
    parseVerp(address.replace(`${ID.toLowerCase()}-0-`, `${ID.toLowerCase()}-1-`), verp),
    "forged",
  );
  assert.equal(parseVerp(address, { ...verp, key: "k2" }), "forged");
  assert.equal(parseVerp(`b-nonsense@${verp.domain}`, verp), "forged");
  assert.equal(parseVerp(address.replace("example.com", "example.org"), verp), null);
  assert.equal(parseVerp(`fbl@${verp.domain}`, verp), null);
});

Deno.test("parseVerp() still verifies an older per-message return path, naming no recipient", () => {
  const tag = createHmac("sha256", "k1").update(ID).digest("hex").slice(0, 10);
  const legacy = `b-${ID.toLowerCase()}-${tag}@${verp.domain}`;
  assert.deepEqual(parseVerp(legacy, verp), { msgId: ID, idx: null });
  assert.equal(parseVerp(legacy.replace(`-${tag}@`, "-0000000000@"), verp), "forged");
});

Deno.test("returnPathFor() gives each recipient its own return path, and keeps the null sender", () => {
  const msg = { id: ID, mailFrom: "app@origin.test", verp: true };
  assert.notEqual(returnPathFor(msg, 0, verp), returnPathFor(msg, 1, verp));
  assert.equal(returnPathFor({ id: ID, mailFrom: "app@origin.test" }, 0, verp), "app@origin.test");
  assert.equal(returnPathFor({ id: ID, mailFrom: "" }, 0, verp), "");
  assert.equal(returnPathFor(msg, 0, undefined), "app@origin.test");
});
