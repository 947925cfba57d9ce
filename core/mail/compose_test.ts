/**
 * Properties of MIME building for the send API (compose.ts): whatever text, names and header
 * values pass the field checks, the message has only CRLF line endings and lines within RFC 5322
 * §2.1.1's 998 octets, is plain ASCII on the wire, carries exactly the header fields asked for
 * (no value can inject another), and its From: reads back to the address and name given.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ComposeInput,
  composeMessage,
  displayNameProblem,
  headerValueProblem,
  parseAddressList,
} from "./compose.ts";

async function bytesOf(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Header fields of a message: names in order, values unfolded. */
function headerFields(text: string): { name: string; value: string }[] {
  const block = text.slice(0, text.indexOf("\r\n\r\n"));
  return block.replace(/\r\n[ \t]/g, " ").split("\r\n").map((line) => {
    const colon = line.indexOf(":");
    return { name: line.slice(0, colon).toLowerCase(), value: line.slice(colon + 1).trim() };
  });
}

const anyText = fc.string({
  unit: fc.oneof(
    fc.constantFrom("\r", "\n", "\r\n", ".", " ", "\t", "=", "é", "€", "\u{1F600}", "\0"),
    fc.string({ minLength: 1, maxLength: 1 }),
  ),
  maxLength: 300,
});
const headerValue = fc.string({ maxLength: 120 }).filter((v) => headerValueProblem(v) === null);
const displayName = fc.string({
  unit: fc.constantFrom(..."abcXYZ .,'-éü"),
  minLength: 1,
  maxLength: 30,
}).filter((n) => n.trim() !== "" && displayNameProblem(n) === null);

Deno.test("composeMessage() writes CRLF-only ASCII lines of at most 998 octets, with exactly the header fields asked for", async () => {
  await fc.assert(
    fc.asyncProperty(
      headerValue,
      anyText,
      fc.option(anyText),
      fc.dictionary(fc.constantFrom("X-Campaign", "X-Ref", "List-Id"), headerValue, {
        maxKeys: 3,
      }),
      fc.boolean(),
      async (subject, text, html, headers, withAttachment) => {
        const input: ComposeInput = {
          from: "app@origin.test",
          to: ["user@dest.test"],
          cc: [],
          bcc: ["hidden@dest.test"],
          replyTo: [],
          subject,
          text,
          ...(html === null ? {} : { html }),
          headers,
          attachments: withAttachment
            ? [{ filename: "a.bin", content: btoa("\r\n.\r\n\0binary") }]
            : [],
        };
        const raw = await bytesOf(composeMessage(input));
        assert.ok(raw.every((b) => b < 0x80), "8-bit byte in the message");
        const wire = new TextDecoder("latin1").decode(raw);
        assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(wire), "a bare CR or LF");
        for (const line of wire.split("\r\n")) assert.ok(line.length <= 998, "a line over 998");
        const fields = headerFields(wire);
        const count = (name: string) => fields.filter((f) => f.name === name).length;
        for (const name of ["from", "to", "mime-version", "content-type"]) {
          assert.equal(count(name), 1, `${name}: ${JSON.stringify(fields)}`);
        }
        assert.equal(count("subject"), subject.trim() === "" ? 0 : 1, "one Subject, none if blank");
        assert.equal(count("bcc"), 0, "Bcc never appears in the header");
        for (const [name, value] of Object.entries(headers)) {
          // An empty value leaves the field out; any other appears once.
          assert.equal(count(name.toLowerCase()), value.trim() === "" ? 0 : 1, name);
        }
        const expected = new Set([
          "from",
          "to",
          "subject",
          "mime-version",
          "content-type",
          "content-transfer-encoding",
          "content-disposition",
          "date",
          "message-id",
          ...Object.keys(headers).map((n) => n.toLowerCase()),
        ]);
        for (const f of fields) {
          assert.ok(expected.has(f.name), `an injected header field: ${f.name}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("composeMessage(): From: reads back to the address and display name given", async () => {
  await fc.assert(
    fc.asyncProperty(displayName, async (name) => {
      const raw = await bytesOf(composeMessage({
        from: { name, address: "app@origin.test" },
        to: ["user@dest.test"],
        cc: [],
        bcc: [],
        replyTo: [],
        subject: "s",
        text: "t",
        headers: {},
        attachments: [],
      }));
      const from = headerFields(new TextDecoder().decode(raw)).find((f) => f.name === "from")!;
      const parsed = parseAddressList(from.value);
      assert.equal(parsed.length, 1, from.value);
      assert.equal(parsed[0]!.address, "app@origin.test");
      if (/^[\x20-\x7e]+$/.test(name)) assert.equal(parsed[0]!.name, name.trim());
    }),
    { numRuns: 150 },
  );
});
