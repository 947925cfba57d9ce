/**
 * Properties of the reply classifier over generated replies, beside the example table in
 * classify_test.ts: the reply code alone decides the kind (RFC 5321 §4.2.1), the enhanced code
 * and text round-trip through parseReply, and nothing a remote server can send makes either
 * function throw anything but the documented error.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type BounceCategory,
  classifyConnectionError,
  classifyReply,
  parseReply,
} from "./classify.ts";

const CATEGORIES: readonly BounceCategory[] = [
  "invalid_recipient",
  "mailbox_full",
  "policy_block",
  "auth_failure",
  "bad_domain",
  "greylisted",
  "throttled",
  "tls_failure",
  "expired",
  "other",
];
const RUNS = { numRuns: 500 };

const code = fc.integer({ min: 200, max: 599 });
// RFC 3463 enhanced codes have class 2, 4 or 5 only; a 3yz reply carries none.
/** Words that do not start with a digit, so none reads as a code or an enhanced code. */
const word = fc.string({
  unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCXYZ<>@.:;,()-_/'\"!?"),
  minLength: 1,
  maxLength: 10,
});
const text = fc.array(word, { minLength: 1, maxLength: 8 }).map((w) => w.join(" "));
const enhancedFor = (c: number) =>
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 30 })).map(([s, d]) =>
    `${Math.floor(c / 100)}.${s}.${d}`
  );

Deno.test("classifyReply(): the reply code alone decides the kind, whatever the text says", () => {
  fc.assert(
    fc.property(
      code,
      fc.option(fc.string({ maxLength: 40 })),
      fc.string({ maxLength: 80 }),
      (c, enhanced, t) => {
        const reply = enhanced === null ? { code: c, text: t } : { code: c, enhanced, text: t };
        const verdict = classifyReply(reply);
        const kind = c < 300 ? "success" : c >= 500 ? "permanent" : "transient";
        assert.equal(verdict.kind, kind);
        if (kind === "success") assert.equal(verdict.category, null);
        else assert.ok(CATEGORIES.includes(verdict.category!), String(verdict.category));
        if (verdict.retryAfterMs !== undefined) {
          assert.equal(kind, "transient");
          assert.ok(verdict.retryAfterMs > 0 && Number.isFinite(verdict.retryAfterMs));
        }
      },
    ),
    RUNS,
  );
});

Deno.test("parseReply() reads back the code, enhanced code and text of any one- or multi-line reply", () => {
  fc.assert(
    fc.property(
      code.chain((c) =>
        fc.tuple(
          fc.constant(c),
          Math.floor(c / 100) === 3 ? fc.constant(null) : fc.option(enhancedFor(c)),
          fc.array(text, { minLength: 1, maxLength: 4 }),
        )
      ),
      fc.constantFrom("\r\n", "\n"),
      ([c, enhanced, lines], eol) => {
        const raw = lines.map((l, i) =>
          `${c}${i < lines.length - 1 ? "-" : " "}${enhanced ? enhanced + " " : ""}${l}`
        ).join(eol);
        const parsed = parseReply(raw);
        assert.equal(parsed.code, c);
        assert.equal(parsed.enhanced, enhanced ?? undefined);
        assert.equal(parsed.text, lines.map((l) => l.trim()).join(" "));
      },
    ),
    RUNS,
  );
});

Deno.test("parseReply() and classifyConnectionError() take any input without surprises", () => {
  fc.assert(
    fc.property(
      fc.string({ maxLength: 200 }),
      fc.option(fc.string({ maxLength: 20 })),
      (raw, errCode) => {
        try {
          const parsed = parseReply(raw);
          assert.ok(parsed.code >= 200 && parsed.code <= 599);
          classifyReply(parsed);
        } catch (err) {
          assert.match((err as Error).message, /^Cannot parse SMTP reply /);
        }
        const verdict = classifyConnectionError({ code: errCode ?? undefined, message: raw });
        assert.notEqual(verdict.kind, "success");
        assert.ok(CATEGORIES.includes(verdict.category!));
      },
    ),
    RUNS,
  );
});
