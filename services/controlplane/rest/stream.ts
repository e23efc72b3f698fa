/**
 * Streamed answers (a handler's `stream`): newline-delimited JSON, one item a
 * line, pulled from the source only as fast as the socket drains.
 *
 * - Errors before the 200: the first item is awaited for up to
 *   `FIRST_ITEM_GRACE_MS`, so a source that fails at once (a compacted
 *   revision, a closed store) is answered with an ordinary problem document.
 *   After that grace the 200 is sent even if nothing has come yet.
 * - Errors after the 200: a last line `{"error": <problem document>}`, then
 *   the response ends.
 * - The client leaves (or the socket breaks): the source is closed, once.
 * - The app closes: every open stream's source is closed, so its response
 *   ends cleanly and its client resumes on another replica; a stream never
 *   holds a shutdown.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { classify, internalError, problemFrom } from './problem.ts';
import type { ItemStream } from './route.ts';

/** How long a streamed answer waits for its first item before sending the 200 anyway. */
export const FIRST_ITEM_GRACE_MS = 250;

const WAITING = Symbol('waiting');

export class OpenStreams {
  readonly #sources = new Set<ItemStream>();

  /** Sends `source` as the answer; throws (for a problem document) when it fails before its first item. */
  async send(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    contentType: string,
    source: ItemStream,
  ): Promise<FastifyReply> {
    const iterator = source[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<unknown>> | undefined = iterator.next();
    let timer: NodeJS.Timeout | undefined;
    try {
      const first = await Promise.race([
        pending,
        new Promise<typeof WAITING>((resolve) => {
          timer = setTimeout(resolve, FIRST_ITEM_GRACE_MS, WAITING);
        }),
      ]);
      if (first !== WAITING) pending = Promise.resolve(first);
    } catch (err) {
      await source.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }

    const sources = this.#sources;
    sources.add(source);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      sources.delete(source);
      await source.close();
    };
    let reading = false;
    const body = new Readable({
      read() {
        if (!reply.raw.headersSent) reply.raw.flushHeaders();
        if (reading) return;
        reading = true;
        const step = pending ?? iterator.next();
        pending = undefined;
        step.then(
          (result) => {
            reading = false;
            if (result.done) body.push(null);
            else body.push(`${JSON.stringify(result.value)}\n`);
          },
          (err: unknown) => {
            reading = false;
            const known = classify(err);
            if (known === undefined || known.code === 'INTERNAL') {
              request.log.error({ err }, 'stream failed');
            } else {
              request.log.info({ code: known.code, detail: known.message }, 'stream ended');
            }
            const problem = problemFrom(known ?? internalError(), request);
            body.push(`${JSON.stringify({ error: problem })}\n`);
            body.push(null);
          },
        );
      },
      destroy(err, callback) {
        close().then(
          () => callback(err),
          () => callback(err),
        );
      },
    });
    body.on('end', () => void close());
    return reply.code(status).type(contentType).header('cache-control', 'no-store').send(body);
  }

  /** Ends every open stream (the app is closing). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#sources].map((source) => source.close()));
  }
}
