/**
 * /v1/holds: mail the content scan held (README "Content filtering"). A credential key sees its
 * own account's holds; the admin token sees every account's, or one account's with
 * `X-Postern-Account`. Releasing queues the message for delivery (event `released`), DELETE drops
 * it (event `dropped`), and a recheck scans it again with rspamd's current rules and the
 * account's current policy, then releases, drops or keeps it held as that scan says.
 */
import { Hono } from "hono";
import type { HoldQueue } from "../core/content/hold_queue.ts";
import type { HoldRecord } from "../core/store/holds.ts";
import { listHolds } from "../core/store/holds.ts";
import { ACCOUNT_HEADER, type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";

const iso = (ms: number) => new Date(ms).toISOString();

function view(h: HoldRecord) {
  return {
    id: h.msgId,
    account: h.account,
    credential: h.credentialId,
    score: h.score,
    symbols: h.symbols,
    held_at: iso(h.heldAt),
    expires_at: iso(h.expiresAt),
    rechecked_at: h.recheckedAt ? iso(h.recheckedAt) : null,
  };
}

const MSG_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function holdsApi(deps: { kv: Deno.Kv; holds: HoldQueue }) {
  const app = new Hono<AppEnv>();

  /** The hold `id` if the caller may act on it (the admin on any account's), else 404. */
  async function visibleHold(
    c: { get(k: "principal"): AppEnv["Variables"]["principal"] },
    id: string,
  ) {
    const hold = MSG_ID.test(id) ? await deps.holds.get(id) : null;
    const p = c.get("principal");
    if (!hold || (p.kind !== "admin" && hold.account !== p.account)) throw errors.notFound("hold");
    return hold;
  }

  app.get("/", async (c) => {
    const p = c.get("principal");
    const named = c.req.header(ACCOUNT_HEADER)?.trim();
    const account = p.kind === "admin" && !named ? null : p.account;
    return c.json({ data: (await listHolds(deps.kv, account)).map(view) });
  });

  app.get("/:id", async (c) => c.json(view(await visibleHold(c, c.req.param("id")))));

  app.post("/:id/release", requireAdmin(), async (c) => {
    const hold = await visibleHold(c, c.req.param("id"));
    const r = await deps.holds.release(hold.msgId);
    if (!r.ok) throw outcomeError(r.reason);
    return c.json({ id: hold.msgId, outcome: "released" });
  });

  app.delete("/:id", requireAdmin(), async (c) => {
    const hold = await visibleHold(c, c.req.param("id"));
    const r = await deps.holds.drop(hold.msgId);
    if (!r.ok) throw outcomeError(r.reason);
    return c.json({ id: hold.msgId, outcome: "dropped" });
  });

  app.post("/:id/recheck", requireAdmin(), async (c) => {
    const hold = await visibleHold(c, c.req.param("id"));
    const r = await deps.holds.recheck(hold.msgId);
    if (r.outcome === "unavailable") {
      throw errors.unavailable(`The content filter cannot scan now: ${r.error}`);
    }
    if ("reason" in r) throw outcomeError(r.reason);
    return c.json({
      id: hold.msgId,
      outcome: r.outcome,
      score: r.score,
      symbols: r.symbols,
      ...(r.outcome === "held" ? { hold: view(r.hold) } : {}),
    });
  });

  return app;
}

function outcomeError(reason: "not_found" | "conflict") {
  return reason === "not_found"
    ? errors.notFound("hold")
    : errors.conflict("The hold was released, dropped or rechecked meanwhile");
}
