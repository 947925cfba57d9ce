/**
 * The message of one DATA as intake reads it: the chunks of the connection's data stream (our
 * engine's MessageStream, or smtp-server's PassThrough), taken from its 'data' events. node:stream's own async iterator did the same job at several times the cost
 * per message (an async generator, an end-of-stream watcher with its listeners and checks, a
 * read() per chunk), on the main thread, once per message.
 *
 * It keeps what intake relied on from that iterator: chunks in order; the end; the stream's
 * error, or a "Premature close" when it is destroyed before its end (the client left); no more
 * than one chunk held here, the stream paused meanwhile so that smtp-server's parser, and then
 * the socket, wait; and a stream destroyed when the reader stops early (an error in its loop).
 *
 * @module
 */
import type { Readable } from "node:stream";

/** What node:stream reports for a stream destroyed before its end. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

export function messageChunks(stream: Readable): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const queue: Uint8Array[] = [];
      let ended = false;
      let failure: Error | null = null;
      let wake: (() => void) | null = null;
      const notify = () => {
        const w = wake;
        wake = null;
        w?.();
      };
      const onData = (chunk: Uint8Array) => {
        queue.push(chunk);
        // The reader is busy with the last chunk: hold this one, and the stream until it asks.
        if (wake === null) stream.pause();
        notify();
      };
      const onEnd = () => {
        ended = true;
        stop();
      };
      const onError = (err: Error) => {
        failure ??= err;
        stop();
      };
      const onClose = () => {
        if (!ended) failure ??= prematureClose();
        stop();
      };
      // The error listener stays: a stream with none would throw an error emitted later.
      const stop = () => {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("close", onClose);
        notify();
      };
      stream.on("data", onData);
      stream.on("end", onEnd);
      stream.on("error", onError);
      stream.on("close", onClose);
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          for (;;) {
            const chunk = queue.shift();
            if (chunk !== undefined) {
              if (queue.length === 0 && !ended && failure === null) stream.resume();
              return { value: chunk, done: false };
            }
            if (failure !== null) throw failure;
            if (ended) return { value: undefined, done: true };
            await new Promise<void>((resolve) => (wake = resolve));
          }
        },
        // The reader left before the end (its loop threw): the rest of the message is dropped.
        return(): Promise<IteratorResult<Uint8Array>> {
          queue.length = 0;
          if (!ended && failure === null) {
            stop();
            stream.destroy();
          }
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
}
