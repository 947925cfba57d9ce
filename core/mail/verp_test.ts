import assert from "node:assert/strict";
import { parseVerp, verpAddress } from "./verp.ts";

const verp = { domain: "bounces.example.com", key: "k1" };

Deno.test("parseVerp() reads back the message id of verpAddress(), case-insensitively", () => {
  const address = verpAddress("01M8243SC15XT4CADKRFNZRH11", verp);
  assert.match(address, /^b-01m8243sc15xt4cadkrfnzrh11-[0-9a-f]{10}@bounces\.example\.com$/);
  assert.equal(parseVerp(address, verp), "01M8243SC15XT4CADKRFNZRH11");
  assert.equal(parseVerp(address.toUpperCase(), verp), "01M8243SC15XT4CADKRFNZRH11");
});

Deno.test("parseVerp() refuses a forged tag, another key or another domain", () => {
  const address = verpAddress("01M8243SC15XT4CADKRFNZRH11", verp);
  assert.equal(parseVerp(address.replace(/-[0-9a-f]{10}@/, "-0000000000@"), verp), null);
  assert.equal(parseVerp(address, { ...verp, key: "k2" }), null);
  assert.equal(parseVerp(address.replace("example.com", "example.org"), verp), null);
});
