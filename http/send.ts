/**
 * The send API: `POST /v1/messages` (JSON, or a whole MIME message as `message/rfc822`) and
 * `POST /v1/messages/batch`. A JSON message is built into MIME by MailComposer and then takes the
 * same path as SMTP mail: core/intake.accept, one commit, `202 {id}` only after it. Every send is
 * checked by the same core/send_scope.ts as SMTP: a credential key under its scopes (source
 * address, sender domains, pools, rate, quota in recipients), the admin token under the rules of
 * the account it acts on (other accounts' domains, require_verified_sender).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { z } from "zod";
import { accept, type IntakeDeps, type Submission } from "../core/intake.ts";
import {
  addressProblem,
  type Attachment,
  composeMessage,
  displayNameProblem,
  headerNameProblem,
  headerValueProblem,
  type Mailbox,
  mailboxAddress,
  parseAddressList,
} from "../core/mail/compose.ts";
import { bytesToBinary, parseHeaderFields } from "../core/mail/headers.ts";
import { IDEMPOTENCY_KEY_PATTERN, MAX_TAGS, TAG_PATTERN } from "../core/mail/postern_headers.ts";
import { sha256 } from "../core/auth/secrets.ts";
import { checkSendScope, loadSendScope, type SendScope } from "../core/send_scope.ts";
import type { SendLimits } from "../core/send_limits.ts";
import type { AppEnv, Principal } from "./auth.ts";
import { ApiError, errorItem, errors, intakeError, scopeError } from "./errors.ts";
import { clientAddress } from "./limits.ts";
import { playSubmissionFault, type SandboxHttp } from "./sandbox_faults.ts";

export interface SendDeps {
  intake: IntakeDeps;
  limits: SendLimits;
  /** Submission faults at the simulator domain (http/sandbox_faults.ts). */
  sandbox?: SandboxHttp;
  /** Recipients one message may have (POSTERN_MAX_RECIPIENTS), as over SMTP. */
  maxRecipients: number;
}

const MAX_BATCH = 500;

function refineWith(check: (v: string) => string | null, what: string) {
  return (v: string, ctx: z.RefinementCtx) => {
    const problem = check(v);
    if (problem) ctx.addIssue({ code: "custom", message: `${what} ${problem}` });
  };
}

const MailboxSchema = z.union([
  z.string().max(320),
  z.object({ name: z.string().max(200), address: z.string().max(320) }).strict(),
]).superRefine((m, ctx) => {
  const problem = addressProblem(mailboxAddress(m));
  if (problem) ctx.addIssue({ code: "custom", message: `address ${problem}` });
  if (typeof m !== "string") {
    const nameProblem = displayNameProblem(m.name);
    if (nameProblem) ctx.addIssue({ code: "custom", message: `name ${nameProblem}` });
  }
}).describe('"user@example.com" or {"name": "User", "address": "user@example.com"}');

// The recipient limit is the send scope's (core/send_scope.ts), checked with the envelope.
const MailboxList = z.union([MailboxSchema, z.array(MailboxSchema)]);

const AttachmentSchema = z.object({
  filename: z.string().min(1).max(255).regex(
    /^[^\x00-\x1f\x7f\/\\]+$/,
    "a file name without control characters or slashes",
  ),
  // Only a body with whitespace is copied: an attachment may be tens of megabytes.
  content: z.string().transform((s) => /\s/.test(s) ? s.replace(/\s+/g, "") : s).refine(
    (s) => s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s),
    "base64 of the file's bytes",
  ),
  content_type: z.string().max(127).regex(
    /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/,
    "a MIME type such as application/pdf",
  ).optional(),
  cid: z.string().max(200).regex(
    /^[A-Za-z0-9!#$%&'*+\/=?^_`{|}~.-]+(@[A-Za-z0-9.-]+)?$/,
    "a Content-ID without angle brackets, such as logo@example.com",
  ).optional(),
}).strict();

const TagsSchema = z.array(
  z.string().regex(TAG_PATTERN, "tags are 1-64 letters, digits and _ . : @ + / -"),
).max(MAX_TAGS);

const MetadataSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, "keys are 1-40 letters, digits and _ . -"),
  z.string().max(500).regex(/^[^\x00-\x1f\x7f]*$/, "values have no control characters"),
).refine((m) => Object.keys(m).length <= 20, "at most 20 metadata keys");

export const SendMessageSchema = z.object({
  from: MailboxSchema,
  to: MailboxList.optional(),
  cc: MailboxList.optional(),
  bcc: MailboxList.optional(),
  reply_to: MailboxList.optional(),
  subject: z.string().max(998).superRefine(refineWith(headerValueProblem, "subject"))
    .default(""),
  text: z.string().optional(),
  html: z.string().optional(),
  headers: z.record(
    z.string().superRefine(refineWith(headerNameProblem, "header name")),
    z.string().superRefine(refineWith(headerValueProblem, "header value")),
  ).refine((h) => Object.keys(h).length <= 50, "at most 50 headers").optional(),
  attachments: z.array(AttachmentSchema).max(100).optional(),
  tags: TagsSchema.optional(),
  metadata: MetadataSchema.optional(),
  test: z.boolean().optional().describe(
    "Test mode: the message goes through everything but is delivered only to the sandbox's " +
      "simulated MX (GET /v1/sandbox)",
  ),
}).strict().superRefine((m, ctx) => {
  const count = [m.to, m.cc, m.bcc].reduce((n, l) => n + (l ? [l].flat().length : 0), 0);
  if (count === 0) ctx.addIssue({ code: "custom", message: "name at least one of to, cc, bcc" });
  if (m.text === undefined && m.html === undefined && !m.attachments?.length) {
    ctx.addIssue({ code: "custom", message: "give text, html or attachments" });
  }
});

export type SendMessage = z.output<typeof SendMessageSchema>;

export const SendBatchSchema = z.array(z.unknown()).min(1).max(MAX_BATCH).describe(
  `Up to ${MAX_BATCH} messages, each shaped as a single send`,
);

function list(v: Mailbox | Mailbox[] | undefined): Mailbox[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function issuesOf(error: z.ZodError) {
  return error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

/** Envelope recipients: every to, cc and bcc address once (case-insensitive). */
function envelopeRecipients(...lists: Mailbox[][]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of lists.flat()) {
    const address = mailboxAddress(m);
    if (seen.has(address.toLowerCase())) continue;
    seen.add(address.toLowerCase());
    out.push(address);
  }
  return out;
}

interface Prepared {
  mailFrom: string;
  recipients: string[];
  body: AsyncIterable<Uint8Array>;
  tags: string[];
  metadata: Record<string, string>;
  /** A digest of the request, for an idempotency key ("" when there is none). */
  fingerprint: string;
  test: boolean;
}

/**
 * A lower bound of the built message's size: the text parts as given and the attachments
 * decoded. Past the size limit the send is refused before anything is built (the MIME encoding
 * only adds to it).
 */
function leastSize(m: SendMessage): number {
  return (m.text?.length ?? 0) + (m.html?.length ?? 0) +
    (m.attachments ?? []).reduce((n, a) => n + Math.floor(a.content.length * 3 / 4), 0);
}

function prepareJson(m: SendMessage, fingerprint: string, maxSize: number): Prepared {
  if (leastSize(m) > maxSize) throw errors.tooLarge(maxSize);
  const to = list(m.to), cc = list(m.cc), bcc = list(m.bcc);
  const attachments: Attachment[] = (m.attachments ?? []).map((a) => ({
    filename: a.filename,
    content: a.content,
    ...(a.content_type ? { contentType: a.content_type } : {}),
    ...(a.cid ? { cid: a.cid } : {}),
  }));
  return {
    mailFrom: mailboxAddress(m.from),
    recipients: envelopeRecipients(to, cc, bcc),
    body: composeMessage({
      from: m.from,
      to,
      cc,
      bcc,
      replyTo: list(m.reply_to),
      subject: m.subject,
      ...(m.text !== undefined ? { text: m.text } : {}),
      ...(m.html !== undefined ? { html: m.html } : {}),
      headers: m.headers ?? {},
      attachments,
    }),
    tags: [...new Set(m.tags ?? [])],
    metadata: m.metadata ?? {},
    fingerprint,
    test: m.test === true,
  };
}

/** A whole MIME message: the envelope comes from the query, else from its From/To/Cc headers. */
function prepareRaw(c: Context, raw: Uint8Array, digest: boolean): Prepared {
  const text = bytesToBinary(raw.subarray(0, 256 * 1024));
  const end = text.search(/\r?\n\r?\n/);
  const fields = parseHeaderFields(
    (end >= 0 ? text.slice(0, end) : text).replace(/\r?\n/g, "\r\n"),
  );
  const field = (name: string) => fields.filter((f) => f.name === name).map((f) => f.value);
  if (field("bcc").length > 0) {
    throw errors.invalid(
      "A raw message may not carry a Bcc header (every recipient would see it); name those " +
        "recipients with ?to= instead",
    );
  }
  const problems: { path: string; message: string }[] = [];
  const fromQuery = c.req.query("from");
  const fromHeader = field("from").flatMap(parseAddressList);
  const mailFrom = fromQuery ?? (fromHeader.length === 1 ? fromHeader[0]!.address : "");
  if (!mailFrom) {
    problems.push({ path: "from", message: "give ?from= or exactly one From: address" });
  }
  const toQuery = c.req.queries("to")?.flatMap((v) => v.split(",")).map((s) => s.trim()) ?? [];
  const recipients = toQuery.length > 0
    ? toQuery
    : [...field("to"), ...field("cc")].flatMap(parseAddressList).map((a) => a.address);
  if (recipients.length === 0) {
    problems.push({ path: "to", message: "give ?to= or To:/Cc: addresses in the message" });
  }
  for (const [path, address] of [["from", mailFrom], ...recipients.map((r) => ["to", r])]) {
    const problem = address ? addressProblem(address!) : null;
    if (problem) problems.push({ path: path!, message: `address ${problem}` });
  }
  const tags = c.req.queries("tag") ?? [];
  for (const tag of tags) {
    if (!TAG_PATTERN.test(tag)) problems.push({ path: "tag", message: `bad tag "${tag}"` });
  }
  if (tags.length > MAX_TAGS) problems.push({ path: "tag", message: `at most ${MAX_TAGS} tags` });
  if (problems.length > 0) throw errors.invalid("Request is invalid", problems);
  return {
    mailFrom,
    recipients: envelopeRecipients(recipients),
    body: (async function* () {
      yield raw;
    })(),
    tags: [...new Set(tags)],
    metadata: {},
    fingerprint: digest ? sha256(bytesToBinary(raw)) : "",
    test: c.req.query("test") === "true",
  };
}

function idempotencyKeyOf(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw errors.invalid("Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  return key;
}

/** The same checks SMTP makes at MAIL FROM and RCPT TO, with every recipient known at once. */
async function checkScopes(
  deps: SendDeps,
  principal: Principal,
  client: string,
  p: Prepared,
): Promise<SendScope> {
  const scope = await loadSendScope(
    deps.intake.kv,
    principal.account,
    principal.credentialId,
    p.mailFrom,
  );
  const refusal = await checkSendScope(
    {
      kv: deps.intake.kv,
      limits: deps.limits,
      maxRecipients: deps.maxRecipients,
    },
    scope,
    {
      client,
      envelopeSender: p.mailFrom,
      recipients: p.recipients.length,
      takeRate: true,
    },
  );
  if (refusal) throw scopeError(refusal);
  return scope!;
}

/** Queues one prepared message; returns its id or throws the ApiError that says why not. */
async function send(
  deps: SendDeps,
  c: Context<AppEnv>,
  p: Prepared,
  idempotencyKey: string | undefined,
): Promise<{ id: string; replayed: boolean }> {
  const principal = c.get("principal");
  const client = clientAddress(c);
  const scope = await checkScopes(deps, principal, client, p);
  await playSubmissionFault(deps.sandbox, p.recipients, scope.credential?.sandboxSubmission);
  const submission: Submission = {
    account: principal.account,
    credentialId: principal.credentialId,
    mailFrom: p.mailFrom,
    recipients: p.recipients,
    clientAddress: client,
    heloName: "http-api",
    protocol: "HTTP",
    via: "http",
    body: p.body,
    scope,
    ...(c.get("memory") ? { memory: c.get("memory")! } : {}),
    tags: p.tags,
    metadata: p.metadata,
    ...(p.test ? { test: true } : {}),
    ...(idempotencyKey !== undefined
      ? { idempotencyKey, idempotencyFingerprint: p.fingerprint }
      : {}),
  };
  const result = await accept(deps.intake, submission);
  if (result.ok) {
    if (result.duplicate && result.firstFingerprint && result.firstFingerprint !== p.fingerprint) {
      throw errors.conflict(
        `Idempotency-Key was first used within 24 h for a different request (message ${result.id})`,
      );
    }
    return { id: result.id, replayed: result.duplicate === true };
  }
  if (result.reason === "store_failed") {
    deps.intake.log.error("http.store_failed", { error: result.error });
  }
  throw intakeError(result, deps.intake.committer.retryMs);
}

/**
 * The parsed body and, only when an idempotency key needs it, the digest of its text. The text
 * is let go once parsed (Hono would keep it to the end of the request): a send's body may be
 * tens of megabytes, counted against the memory budget.
 */
async function readJson(
  c: Context,
  digest: boolean,
): Promise<{ value: unknown; fingerprint: string }> {
  const text = await c.req.text();
  c.req.bodyCache = {};
  try {
    return { value: JSON.parse(text), fingerprint: digest ? sha256(text) : "" };
  } catch {
    throw errors.invalid("Request body is not valid JSON");
  }
}

export function sendApi(deps: SendDeps) {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const key = idempotencyKeyOf(c);
    const type = (c.req.header("content-type") ?? "").toLowerCase();
    let prepared: Prepared;
    if (type.startsWith("message/rfc822")) {
      prepared = prepareRaw(c, new Uint8Array(await c.req.arrayBuffer()), key !== undefined);
    } else {
      const { value, fingerprint } = await readJson(c, key !== undefined);
      const parsed = SendMessageSchema.safeParse(value);
      if (!parsed.success) throw errors.invalid("Request body is invalid", issuesOf(parsed.error));
      prepared = prepareJson(parsed.data, fingerprint, deps.intake.maxMessageSize);
    }
    const { id, replayed } = await send(deps, c, prepared, key);
    if (replayed) c.header("idempotent-replayed", "true");
    deps.intake.log.info("http.accepted", { msg: id, rcpts: prepared.recipients.length, replayed });
    return c.json({ id }, 202);
  });

  app.post("/batch", async (c) => {
    const key = idempotencyKeyOf(c);
    const { value } = await readJson(c, false);
    const batch = SendBatchSchema.safeParse(value);
    if (!batch.success) throw errors.invalid("Request body is invalid", issuesOf(batch.error));
    const results = [];
    for (const [index, item] of batch.data.entries()) {
      try {
        const parsed = SendMessageSchema.safeParse(item);
        if (!parsed.success) {
          throw errors.invalid("Message is invalid", issuesOf(parsed.error));
        }
        const prepared = prepareJson(
          parsed.data,
          key === undefined ? "" : sha256(JSON.stringify(item)),
          deps.intake.maxMessageSize,
        );
        const { id } = await send(
          deps,
          c,
          prepared,
          key === undefined ? undefined : `${key}:${index}`,
        );
        results.push({ index, status: 202, id });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        results.push({ index, ...errorItem(err) });
      }
    }
    return c.json(results, 200);
  });

  return app;
}
