/**
 * The message of one DATA as the onData handlers read it, in place of smtp-server's PassThrough:
 * the members of a readable stream they use (`on`/`once`/`off` for data, end, error and close;
 * pause, resume, destroy; `readable`, `destroyed`, `readableFlowing`; smtp-server's `byteLength`
 * and `sizeExceeded`), and nothing else: no node:stream machinery, buffering or EventEmitter per
 * message.
 *
 * The connection writes the dot-unstuffed data in; a chunk that cannot be handed out at once (no
 * reader yet, or the reader paused) is held, and the connection reads no more until it is taken
 * (`onDrain`), so one message holds at most one socket read here. As with node:stream, a chunk
 * is handed out in the write when the reader is flowing, and otherwise a turn later; 'end' comes
 * once the last chunk is taken, 'error' and 'close' a turn after `destroy`.
 *
 * @module
 */

// deno-lint-ignore no-explicit-any
type Listener = (...args: any[]) => void;
type Event = "data" | "end" | "error" | "close";

const none: Listener[] = [];

export class MessageStream {
  /** Message bytes received so far (smtp-server's `byteLength`). */
  byteLength = 0;
  /** More than the server's `size` arrived (the message is still read to its end). */
  sizeExceeded = false;
  /** null until a reader attaches or resumes, false while paused (as node:stream). */
  readableFlowing: boolean | null = null;
  destroyed = false;
  /** 'end' was emitted. */
  readableEnded = false;
  /** The connection has written the last data. */
  writableEnded = false;

  #data: Listener[] = none;
  #end: Listener[] = none;
  #error: Listener[] = none;
  #close: Listener[] = none;
  #held: Uint8Array[] = [];
  #flushQueued = false;
  /** The connection, waiting for the held chunks to be taken. */
  #onDrain: (() => void) | null = null;

  get readable(): boolean {
    return !this.destroyed && !this.readableEnded;
  }

  on(event: Event | string, listener: Listener): this {
    switch (event) {
      case "data":
        this.#data = [...this.#data, listener];
        if (this.readableFlowing !== false) this.resume();
        break;
      case "end":
        this.#end = [...this.#end, listener];
        break;
      case "error":
        this.#error = [...this.#error, listener];
        break;
      case "close":
        this.#close = [...this.#close, listener];
        break;
    }
    return this;
  }

  addListener(event: Event | string, listener: Listener): this {
    return this.on(event, listener);
  }

  once(event: Event | string, listener: Listener): this {
    const once: Listener & { listener?: Listener } = (...args) => {
      this.off(event, once);
      listener(...args);
    };
    once.listener = listener;
    return this.on(event, once);
  }

  off(event: Event | string, listener: Listener): this {
    const drop = (list: Listener[]) =>
      list.filter((l) => l !== listener && (l as { listener?: Listener }).listener !== listener);
    switch (event) {
      case "data":
        this.#data = drop(this.#data);
        break;
      case "end":
        this.#end = drop(this.#end);
        break;
      case "error":
        this.#error = drop(this.#error);
        break;
      case "close":
        this.#close = drop(this.#close);
        break;
    }
    return this;
  }

  removeListener(event: Event | string, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: Event | string): this {
    if (event === undefined || event === "data") this.#data = none;
    if (event === undefined || event === "end") this.#end = none;
    if (event === undefined || event === "error") this.#error = none;
    if (event === undefined || event === "close") this.#close = none;
    return this;
  }

  listenerCount(event: Event | string): number {
    return event === "data"
      ? this.#data.length
      : event === "end"
      ? this.#end.length
      : event === "error"
      ? this.#error.length
      : event === "close"
      ? this.#close.length
      : 0;
  }

  pause(): this {
    this.readableFlowing = false;
    return this;
  }

  resume(): this {
    this.readableFlowing = true;
    if (
      !this.#flushQueued && (this.#held.length > 0 || this.writableEnded || this.#onDrain !== null)
    ) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    return this;
  }

  /** The rest of the message is not wanted: dropped, and 'error' (if given) and 'close' follow. */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#held.length = 0;
    queueMicrotask(() => {
      if (err) { for (const l of this.#error) l(err); }
      for (const l of this.#close) l();
    });
    this.#drained();
    return this;
  }

  /**
   * The connection's side: hands `chunk` out, or holds it. false: held, so the connection waits
   * for `onDrain` before it reads more.
   */
  write(chunk: Uint8Array, onDrain: () => void): boolean {
    if (this.destroyed) return true;
    if (this.readableFlowing === true && this.#held.length === 0) {
      for (const l of this.#data) l(chunk);
      if (this.readableFlowing === true || this.destroyed) return true;
      // The reader paused on this chunk: it has it, but wants no more for now.
      this.#onDrain = onDrain;
      return false;
    }
    this.#held.push(chunk);
    this.#onDrain = onDrain;
    return false;
  }

  /** The connection's side: the message is complete. */
  end() {
    if (this.writableEnded) return;
    this.writableEnded = true;
    if (this.readableFlowing === true && this.#held.length === 0) this.#emitEnd();
  }

  #flush = () => {
    this.#flushQueued = false;
    while (this.readableFlowing === true && !this.destroyed && this.#held.length > 0) {
      const chunk = this.#held.shift()!;
      for (const l of this.#data) l(chunk);
    }
    if (this.destroyed || this.readableFlowing !== true) return;
    if (this.writableEnded) this.#emitEnd();
    else this.#drained();
  };

  #drained() {
    const onDrain = this.#onDrain;
    this.#onDrain = null;
    onDrain?.();
  }

  #emitEnd() {
    if (this.readableEnded || this.destroyed) return;
    this.readableEnded = true;
    for (const l of this.#end) l();
    for (const l of this.#close) l();
  }
}
