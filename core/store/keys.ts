/**
 * Every KV key family Postern writes. No other module builds keys by hand.
 *
 * | key                                   | value            | written by                 |
 * |---------------------------------------|------------------|----------------------------|
 * | ["msg", id]                           | MessageRecord    | intake                     |
 * | ["body", id, n]                       | Uint8Array ≤63000| intake (chunk n of body)   |
 * | ["staged", id]                        | {createdAt}      | intake, before a large body's chunks; removed by its commit |
 * | ["rcpt", id, idx]                     | RecipientRow     | intake, destination actor  |
 * | ["due", domain, dueAt, id, idx]       | true             | intake, destination actor  |
 * | ["queue", domain]                     | {touchedAt}      | intake (destination has work) |
 * | ["ev", msgId, eventId]                | MessageEvent     | same commit as the change  |
 * | ["cred", id]                          | Credential       | credentials                |
 * | ["cred_user", username]               | id               | credentials                |
 * | ["lease", "dest", domain]             | Lease            | destination actor          |
 * | ["meta", "admin_token"]               | {hash}           | start-up                   |
 */

export type Key = Deno.KvKey;

export const keys = {
  message: (id: string): Key => ["msg", id],
  body: (id: string, n: number): Key => ["body", id, n],
  bodyPrefix: (id: string): Key => ["body", id],
  staged: (id: string): Key => ["staged", id],
  stagedPrefix: (): Key => ["staged"],
  recipient: (id: string, idx: number): Key => ["rcpt", id, idx],
  recipientPrefix: (id: string): Key => ["rcpt", id],
  due: (domain: string, dueAt: number, id: string, idx: number): Key => [
    "due",
    domain,
    dueAt,
    id,
    idx,
  ],
  duePrefix: (domain: string): Key => ["due", domain],
  queue: (domain: string): Key => ["queue", domain],
  queuePrefix: (): Key => ["queue"],
  event: (msgId: string, eventId: string): Key => ["ev", msgId, eventId],
  eventPrefix: (msgId: string): Key => ["ev", msgId],
  credential: (id: string): Key => ["cred", id],
  credentialPrefix: (): Key => ["cred"],
  credentialByUser: (username: string): Key => ["cred_user", username],
  destinationLease: (domain: string): Key => ["lease", "dest", domain],
  adminToken: (): Key => ["meta", "admin_token"],
};
