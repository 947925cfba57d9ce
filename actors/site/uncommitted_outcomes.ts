/**
 * Attempt outcomes the store would not take (a full disk, a store refusing writes), held in
 * memory and committed again until it takes them.
 *
 * Instead of letting go of a due entry whose outcome could not be recorded, which would leave it
 * due in KV and send a recipient the remote side already accepted a second time, the site keeps
 * the entry claimed while its outcome waits here, and takes no new work until every held outcome
 * is committed. That bounds what is held: at most one outcome per connection the site had open
 * when the store started failing (its concurrency window, under the global connection cap).
 * Recovery needs no restart: the first commit the store takes again drains the rest.
 */
import type { Logger } from "../../core/log.ts";
import { HELD_OUTCOME_RETRY } from "../../core/policy/actor_tuning.ts";
import { sleep, type Timers } from "../actor_loop.ts";

export interface UncommittedOutcomesDeps {
  site: string;
  log: Logger;
  timers: Timers;
  /** The entry's outcome is committed (or was superseded): it may be let go. */
  committed(id: string): void;
  /** Every held outcome is committed: the site may take work again. */
  drained(): void;
}

export class UncommittedOutcomes {
  #deps: UncommittedOutcomesDeps;
  /** Due entry id → commits the entry's outcome; throws while the store still fails. */
  #held = new Map<string, () => Promise<void>>();
  #running: Promise<void> | null = null;

  constructor(deps: UncommittedOutcomesDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#held.size;
  }

  has(id: string): boolean {
    return this.#held.has(id);
  }

  /** Holds an outcome whose commit failed with `err`; `commit` tries it again. */
  hold(id: string, commit: () => Promise<void>, err: unknown) {
    this.#held.set(id, commit);
    this.#deps.log.error("delivery.outcome_held", {
      site: this.#deps.site,
      entry: id,
      held: this.#held.size,
      err,
    });
    this.#running ??= this.#retry().finally(() => {
      this.#running = null;
    });
  }

  /** Resolves once nothing is held (at once when nothing is). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #retry() {
    let wait: number = HELD_OUTCOME_RETRY.firstMs;
    let tries = 0;
    while (this.#held.size > 0) {
      await sleep(this.#deps.timers, wait);
      tries++;
      for (const [id, commit] of [...this.#held]) {
        try {
          await commit();
        } catch {
          // The store still fails: the rest would too. Wait longer before the next round.
          wait = Math.min(wait * 2, HELD_OUTCOME_RETRY.maxMs);
          break;
        }
        this.#held.delete(id);
        this.#deps.committed(id);
      }
    }
    this.#deps.log.warn("delivery.outcomes_committed", { site: this.#deps.site, tries });
    this.#deps.drained();
  }
}
