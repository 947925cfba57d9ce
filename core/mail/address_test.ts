import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkRelayAddress,
  checkSenderAddress,
  domainOf,
  isValidDomain,
  MAX_LOCAL_PART,
} from "./address.ts";

const RUNS = { numRuns: 300 };
const atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&'*+-/=?^_`{|}~"
  .replace("!", "");
const atom = fc.string({ unit: fc.constantFrom(...atext), minLength: 1, maxLength: 12 });
/** A dot-atom local part (RFC 5321 §4.1.2 Dot-string) without % or ! (those are tricks here). */
const localPart = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join("."))
  .filter((l) => l.length <= MAX_LOCAL_PART);
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const domain = fc.tuple(
  fc.array(label, { minLength: 1, maxLength: 3 }),
  fc.constantFrom("test", "example", "org"),
)
  .map(([labels, tld]) => [...labels, tld].join("."));
const address = fc.tuple(localPart, domain).map(([l, d]) => `${l}@${d}`);

Deno.test("checkRelayAddress() accepts every dot-atom address within the RFC 5321 limits", () => {
  fc.assert(
    fc.property(address, (a) => {
      assert.equal(checkRelayAddress(a), null, a);
      assert.equal(checkSenderAddress(a), null, a);
      assert.equal(isValidDomain(domainOf(a)), true);
    }),
    RUNS,
  );
});

/** Ways to make an address mean "then relay on to evil.example". */
const tricks: Array<[string, (local: string, domain: string) => string]> = [
  ["percent hack", (l, d) => `${l}%evil.example@${d}`],
  ["percent hack in front", (l, d) => `evil.example%${l}@${d}`],
  ["source route", (l, d) => `@${d}:${l}@evil.example`],
  ["source route with two hops", (l, d) => `@${d},@relay.test:${l}@evil.example`],
  ["bang path", (l, d) => `evil.example!${l}@${d}`],
  ["bang path with two hops", (l, d) => `a.example!evil.example!${l}@${d}`],
  ["quoted local part with @", (l, d) => `"${l}@evil.example"@${d}`],
  ["two @", (l, d) => `${l}@evil.example@${d}`],
  ["@ inside the domain", (l, d) => `${l}@${d}@evil.example`],
  ["address literal", (l) => `${l}@[192.0.2.1]`],
  ["no domain", (l) => l],
  ["empty local part", (_l, d) => `@${d}`],
  ["trailing dot in local part", (l, d) => `${l}.@${d}`],
  ["two dots in local part", (l, d) => `${l}..x@${d}`],
  ["angle bracket", (l, d) => `${l}<x>@${d}`],
  ["CRLF", (l, d) => `${l}\r\nRCPT TO:<x@evil.example>@${d}`],
  ["NUL", (l, d) => `${l}\0@${d}`],
];

Deno.test("checkRelayAddress() refuses every relay trick, whatever the address around it", () => {
  for (const [name, trick] of tricks) {
    fc.assert(
      fc.property(localPart, domain, (l, d) => {
        const a = trick(l, d);
        assert.notEqual(checkRelayAddress(a), null, `${name}: ${JSON.stringify(a)}`);
        assert.notEqual(checkSenderAddress(a), null, `${name}: ${JSON.stringify(a)}`);
      }),
      { numRuns: 50 },
    );
  }
});

Deno.test("checkRelayAddress() counts the RFC 5321 §4.5.3.1 limits in octets", () => {
  const d = "example.test";
  assert.equal(checkRelayAddress(`${"a".repeat(64)}@${d}`), null);
  assert.equal(checkRelayAddress(`${"a".repeat(65)}@${d}`), "too_long");
  // 32 two-octet characters are 64 octets; 33 are 66, although only 33 UTF-16 units.
  assert.equal(checkRelayAddress(`${"é".repeat(32)}@${d}`), null);
  assert.equal(checkRelayAddress(`${"é".repeat(33)}@${d}`), "too_long");
  // A path is at most 256 octets with its angle brackets: 254 for the address itself.
  const labels = (n: number) => Array.from({ length: n }, () => "b".repeat(60)).join(".");
  const at254 = `${"a".repeat(64)}@${labels(3)}.${"c".repeat(6)}`;
  assert.equal(at254.length, 254);
  assert.equal(checkRelayAddress(at254), null);
  assert.equal(checkRelayAddress(`a${at254}`), "too_long");
  assert.equal(isValidDomain(`${labels(4)}.${"c".repeat(10)}`), true, "a 254-octet domain");
  assert.equal(isValidDomain(`${labels(4)}.${"c".repeat(12)}`), false, "a 256-octet domain");
  assert.equal(isValidDomain(`${"b".repeat(64)}.test`), false, "a 64-octet label");
});

Deno.test("checkRelayAddress() names the trick it refused", () => {
  assert.equal(checkRelayAddress("user%evil.example@relay.test"), "percent_hack");
  assert.equal(checkRelayAddress("@relay.test:user@evil.example"), "source_route");
  assert.equal(checkRelayAddress("evil.example!user@relay.test"), "bang_path");
  assert.equal(checkRelayAddress('"user@evil.example"@relay.test'), "syntax");
  assert.equal(checkRelayAddress("user@evil.example@relay.test"), "syntax");
  assert.equal(checkRelayAddress("user@[127.0.0.1]"), "bad_domain");
  assert.equal(checkSenderAddress(""), null, "the null reverse-path is a sender");
});
