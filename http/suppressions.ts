/**
 * /v1/suppressions: the caller's account's suppression list. GET pages through it by cursor,
 * POST adds `{address, reason}`, DELETE /:address removes one. Mail to a listed address is not
 * attempted; intake records it as `suppressed`.
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  addSuppression,
  getSuppression,
  listSuppressions,
  normalizeAddress,
  removeSuppression,
  type Suppression,
  type SuppressionCache,
} from "../core/store/suppressions.ts";
import { checkRelayAddress } from "../core/mail/address.ts";
import type { AppEnv } from "./auth.ts";
import { errors } from "./errors.ts";
import { parseJson } from "./validate.ts";

export const AddSuppression = z.object({
  address: z.string().trim().min(3).max(256).refine(
    (a) => checkRelayAddress(a) === null,
    "not a valid email address",
  ),
  reason: z.string().trim().min(1).max(200).default("manual"),
}).strict();

function view(s: Suppression) {
  return {
    address: s.address,
    reason: s.reason,
    source: s.source,
    created_at: new Date(s.createdAt).toISOString(),
    ...(s.msgId ? { message_id: s.msgId } : {}),
    ...(s.reply ? { reply: s.reply } : {}),
  };
}

/**
 * `listOf` names the list a caller's account reads and writes: its own, or (mounted at
 * /v1/sandbox/suppressions) the sandbox's list of its simulator addresses.
 */
export function suppressionsApi(
  kv: Deno.Kv,
  cache?: SuppressionCache,
  listOf: (account: string) => string = (account) => account,
) {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const limitText = c.req.query("limit");
    const limit = limitText === undefined ? 100 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw errors.invalid("limit must be an integer from 1 to 1000");
    }
    const cursor = c.req.query("cursor");
    let page;
    try {
      page = await listSuppressions(kv, listOf(c.get("principal").account), { cursor, limit });
    } catch {
      throw errors.invalid("cursor is not valid");
    }
    return c.json({ data: page.items.map(view), next_cursor: page.cursor });
  });

  app.get("/:address", async (c) => {
    const s = await getSuppression(kv, listOf(c.get("principal").account), c.req.param("address"));
    if (!s) throw errors.notFound("suppression");
    return c.json(view(s));
  });

  app.post("/", async (c) => {
    const input = await parseJson(c, AddSuppression);
    const account = listOf(c.get("principal").account);
    const s: Suppression = {
      address: normalizeAddress(input.address),
      reason: input.reason,
      source: "api",
      createdAt: Date.now(),
    };
    await addSuppression(kv, account, s);
    cache?.remember(account, s.address, s.reason);
    return c.json(view(s), 201);
  });

  app.delete("/:address", async (c) => {
    const account = listOf(c.get("principal").account);
    const address = normalizeAddress(c.req.param("address"));
    if (!(await removeSuppression(kv, account, address))) throw errors.notFound("suppression");
    cache?.forget(account, address);
    return c.json({ address, deleted: true });
  });

  return app;
}
