/**
 * The in-process wake-up from intake to the worker. Intake never imports actors/, so it rings
 * this bell and whoever runs the destination actors listens. Other nodes sharing the store find
 * the same work by polling the queue keys.
 */
import type { MessageRecord, RecipientRow } from "./model.ts";

export interface QueuedMessage {
  msg: MessageRecord;
  rows: RecipientRow[];
  /** Versionstamp of the message commit: every due entry it wrote carries it. */
  versionstamp: string;
  /** Rows and due entries were written ahead of the commit (a huge recipient list). */
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
