/**
 * /v1/domains: sending domains, their DKIM keys and the DNS records to publish.
 *
 * The admin token adds, deletes and re-keys domains; any key of the account may list and read
 * them and ask for a verification (it only reads DNS). A private key never leaves the store:
 * views list selectors, algorithms, states and the public records only.
 */
import type { SecretBox } from "../core/auth/secret_box.ts";
import { Hono } from "hono";
import { z } from "zod";
import {
  createDomain,
  deleteDomain,
  getDomain,
  listDomains,
  rotateDomainKeys,
  type SendingDomain,
} from "../core/store/domains.ts";
import { type CheckedRecord, domainRecords, verifyDomain } from "../core/domain_verification.ts";
import type { TxtLookup } from "../core/mail/dns_records.ts";
import { type AppEnv, requireAdmin } from "./auth.ts";
import { errors } from "./errors.ts";
import { domainName } from "./fields.ts";
import { parseJson } from "./validate.ts";

export const CreateDomain = z.object({
  name: domainName,
  dkim: z.object({
    algorithms: z.array(z.enum(["rsa", "ed25519"])).min(1).max(2)
      .refine((a) => new Set(a).size === a.length, "each algorithm at most once")
      .default(["rsa"]),
  }).strict().default({ algorithms: ["rsa"] }),
}).strict();

export interface DomainsDeps {
  kv: Deno.Kv;
  /** The name SPF records should include (POSTERN_SPF_INCLUDE, else the hostname). */
  spfInclude: string;
  /** TXT lookups through POSTERN_DNS. */
  txtLookup: TxtLookup;
  /** Seals DKIM private keys before they are stored. */
  secretBox: SecretBox;
}

const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

function view(d: SendingDomain, spfInclude: string, checked?: CheckedRecord[]) {
  const last = d.lastCheck?.records ?? [];
  const records = checked ??
    domainRecords(d, spfInclude).map((r) => ({
      ...r,
      state: last.find((l) => l.name === r.name && l.purpose === r.purpose)?.state ?? null,
    }));
  return {
    id: d.id,
    name: d.name,
    account: d.account,
    verified: d.verified,
    verified_at: iso(d.verifiedAt),
    last_checked_at: iso(d.lastCheck?.at ?? null),
    created_at: iso(d.createdAt),
    dkim: d.keys.map((k) => ({
      selector: k.selector,
      algorithm: k.algorithm,
      status: k.status,
      created_at: iso(k.createdAt),
      activated_at: iso(k.activatedAt),
      retired_at: iso(k.retiredAt),
    })),
    records,
  };
}

export function domainsApi(deps: DomainsDeps) {
  const { kv, spfInclude } = deps;
  const app = new Hono<AppEnv>();

  /** Domain `id` of the caller's account, or 404 (another account's id included). */
  async function ownDomain(account: string, id: string): Promise<SendingDomain> {
    const domain = /^dom_[a-z0-9]{16}$/.test(id) ? await getDomain(kv, id) : null;
    if (!domain || domain.account !== account) throw errors.notFound("domain");
    return domain;
  }

  app.post("/", requireAdmin(), async (c) => {
    const input = await parseJson(c, CreateDomain);
    const domain = await createDomain(kv, deps.secretBox, {
      account: c.get("principal").account,
      name: input.name,
      algorithms: input.dkim.algorithms,
    });
    if (domain === "exists") throw errors.conflict(`The domain ${input.name} is already added`);
    return c.json(view(domain, spfInclude), 201);
  });

  app.get("/", async (c) => {
    const list = await listDomains(kv, c.get("principal").account);
    return c.json({ data: list.map((d) => view(d, spfInclude)) });
  });

  app.get("/:id", async (c) => {
    return c.json(view(await ownDomain(c.get("principal").account, c.req.param("id")), spfInclude));
  });

  app.delete("/:id", requireAdmin(), async (c) => {
    const domain = await ownDomain(c.get("principal").account, c.req.param("id"));
    if (!(await deleteDomain(kv, domain.id))) throw errors.notFound("domain");
    return c.json({ id: domain.id, name: domain.name, deleted: true });
  });

  /** Looks the records up over DNS; a finished rotation switches signing to the new keys. */
  app.post("/:id/verify", async (c) => {
    const domain = await ownDomain(c.get("principal").account, c.req.param("id"));
    let result;
    try {
      result = await verifyDomain(kv, domain.id, { lookup: deps.txtLookup, spfInclude });
    } catch (err) {
      throw errors.unavailable(
        `Cannot verify ${domain.name} as a DNS lookup failed: ${(err as Error).message}`,
      );
    }
    if (!result) throw errors.notFound("domain");
    return c.json(view(result.domain, spfInclude, result.records));
  });

  /** Starts a key rotation: new selector(s) to publish; signing moves once they verify. */
  app.post("/:id/rotate-dkim", requireAdmin(), async (c) => {
    const domain = await ownDomain(c.get("principal").account, c.req.param("id"));
    const rotated = await rotateDomainKeys(kv, deps.secretBox, domain.id);
    if (rotated === null) throw errors.notFound("domain");
    if (rotated === "pending") {
      throw errors.conflict(
        "A key rotation already waits for its DNS records: publish them and POST /verify",
      );
    }
    return c.json(view(rotated, spfInclude), 201);
  });

  return app;
}
