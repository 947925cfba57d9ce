/**
 * The in-process wake-up from intake to the worker. Intake never imports actors/, so it rings
 * this bell and whoever runs the destination actors listens. Other nodes sharing the store find
 * the same work by polling the queue keys.
 */
import type { MessageRecord, RecipientRow } from "./model.ts";
import type { DueEntry } from "./store/queue.ts";

export interface QueuedMessage {
  msg: MessageRecord;
  rows: RecipientRow[];
  /** Versionstamp of the message commit. */
  versionstamp: string;
  /** The due entries the message's commits wrote, as the store wrote them (key, versionstamp). */
  due: DueEntry[];
  /** The body was written ahead of the message commit (a large message). */
  staged: boolean;
}

export type QueueListener = (queued: QueuedMessage) => void;

export class QueueSignal {
  #listeners = new Set<QueueListener>();

  subscribe(listener: QueueListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  notify(queued: QueuedMessage) {
    for (const listener of this.#listeners) listener(queued);
  }
}
