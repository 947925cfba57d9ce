/**
 * A large message's due entries are written ahead of its message commit, so an actor's scan can
 * claim one before the message exists. Whatever the interleaving, such an entry is sent once the
 * message commits, never dropped as an orphan.
 */
import assert from "node:assert/strict";
import { loadJob } from "./job.ts";
import { keys } from "../../core/store/keys.ts";
import { dueValue, listDue } from "../../core/store/queue.ts";
import type { MessageRecord, RecipientRow } from "../../core/model.ts";

const DOMAIN = "dest.test";
const ID = "01TESTSTAGEDMESSAGE00000000";

/** The store with the message staged: its marker, its recipient row and its due entry. */
async function stagedStore(path: string): Promise<Deno.Kv> {
  const kv = await Deno.openKv(path);
  const row: RecipientRow = {
    msgId: ID,
    idx: 0,
    rcpt: `user@${DOMAIN}`,
    domain: DOMAIN,
    status: "queued",
    attempts: 0,
    queuedAt: 1_000,
    nextAttemptAt: 1_000,
    updatedAt: 1_000,
  };
  await kv.atomic()
    .set(keys.staged(ID), { createdAt: 1_000 })
    .set(keys.recipient(ID, 0), row)
    .set(keys.due(DOMAIN, 1_000, ID, 0), dueValue([0], undefined))
    .commit();
  return kv;
}

/** The message commit, as intake makes it: the record, and the staged marker gone. */
async function commitMessage(kv: Deno.Kv) {
  const msg = { id: ID, createdAt: 1_000, recipients: 1 } as unknown as MessageRecord;
  await kv.atomic().set(keys.message(ID), msg).delete(keys.staged(ID)).commit();
}

/**
 * The store as a busy machine shows it to the actor: the message commit lands right after the
 * actor's first read returns, before its next one (the window the reads used to leave open).
 */
function commitAfterFirstRead(kv: Deno.Kv): Deno.Kv {
  let reads = 0;
  const afterRead = async <T>(result: T): Promise<T> => {
    if (reads++ === 0) await commitMessage(kv);
    return result;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get" || prop === "getMany") {
        return (...args: unknown[]) =>
          (target[prop] as (...a: unknown[]) => Promise<unknown>)(...args).then(afterRead);
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a due entry claimed while its message commits is kept and sent, not dropped as an orphan", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_job_" });
  const kv = await stagedStore(`${dir}/store.kv`);
  try {
    const [due] = await listDue(kv, DOMAIN, 1_000, 10);
    assert.ok(due, "the staged message's due entry is listed");

    // The first claim comes before the message: nothing to send yet.
    assert.equal(await loadJob(commitAfterFirstRead(kv), due), null);

    // The entry is still due, and the next claim sends the now-committed message.
    const [again] = await listDue(kv, DOMAIN, 1_000, 10);
    assert.ok(again, "the entry is still queued after the message committed");
    const job = await loadJob(kv, again);
    assert.equal(job?.msg.id, ID);
    assert.deepEqual(job?.rows.map((r) => r.rcpt), [`user@${DOMAIN}`]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a due entry whose message was never committed, and is no longer staged, is dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "postern_job_" });
  const kv = await stagedStore(`${dir}/store.kv`);
  try {
    await kv.delete(keys.staged(ID)); // the intake gave up (its discard removes the marker)
    const [due] = await listDue(kv, DOMAIN, 1_000, 10);
    assert.equal(await loadJob(kv, due!), null);
    assert.deepEqual(await listDue(kv, DOMAIN, 1_000, 10), []);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
