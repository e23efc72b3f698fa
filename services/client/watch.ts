/**
 * `client.watch`: GET /v1/watch as an async iterable of ResourceEvents that
 * survives dropped connections and replicas.
 *
 * After a cut (a broken socket, a replica shutting down, a 5xx) it watches
 * again - failing over to the next endpoint - from the revision of the last
 * event it delivered, and skips the events of that revision it already
 * delivered (several events can share a revision: one transaction). So the
 * caller sees no gap and no duplicate. Resuming from `last.revision + 1`
 * would be as exact when no two events share a revision; resuming from the
 * revision itself is exact always.
 *
 * Terminal: WATCH_COMPACTED and WATCH_SLOW_CONSUMER (re-list, then watch
 * from the list's revision: the Informer does), TOO_MANY_WATCHES and any
 * other 4xx answer end iteration with that ApiError; so does
 * `retryForMs` without reaching any endpoint.
 */
import type { Readable } from 'node:stream';
import type { ResourceEvent, WatchRequest } from '../api/contracts.ts';
import { ApiError, ClientError, errorFromProblem } from './errors.ts';
import type { Transport } from './transport.ts';

export interface ClientWatchOptions extends WatchRequest {
  /** Give up after this long without reaching an endpoint. Default 30 s. */
  retryForMs?: number;
}

export interface ClientWatch extends AsyncIterable<ResourceEvent> {
  /** Stops the watch: iteration ends, the connection is closed. */
  close(): Promise<void>;
}

const MAX_LINE = 16 * 1024 * 1024;

/** Lines of an NDJSON body, parsed. */
async function* jsonLines(body: Readable): AsyncGenerator<unknown> {
  let buffer = '';
  body.setEncoding('utf8');
  for await (const chunk of body as AsyncIterable<string>) {
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim() !== '') yield JSON.parse(line);
      newline = buffer.indexOf('\n');
    }
    if (buffer.length > MAX_LINE) throw new ClientError('BAD_RESPONSE', 'an overlong watch line');
  }
}

function isTerminal(err: unknown): boolean {
  if (err instanceof ApiError) return err.status < 500;
  // BAD_RESPONSE: not the API; UNAVAILABLE is retried until retryForMs.
  return err instanceof ClientError && err.code !== 'UNAVAILABLE';
}

/**
 * One connection's events, from `from` on (all of them when undefined).
 * `connected` is called once the endpoint was reached: the retry budget
 * (`retryForMs`) starts again from there. Ends when the server ends the
 * stream; throws on a cut or an error answer.
 */
export type OpenEvents = (
  from: number | undefined,
  signal: AbortSignal,
  connected: () => void,
) => AsyncIterable<ResourceEvent>;

/** GET /v1/watch over the REST transport, one connection. */
export function restEvents(transport: Transport, prefix: string): OpenEvents {
  return async function* (from, signal, connected) {
    const query = new URLSearchParams({ prefix });
    if (from !== undefined) query.set('fromRevision', String(from));
    const body = await transport.stream(`/v1/watch?${query}`, 'application/x-ndjson', signal);
    connected();
    try {
      for await (const line of jsonLines(body)) {
        const item = line as ResourceEvent & { error?: unknown };
        if (item.error !== undefined) {
          const problem = item.error as { status?: unknown };
          throw errorFromProblem(Number(problem.status ?? 500), problem);
        }
        yield item;
      }
    } finally {
      body.destroy();
    }
  };
}

export function openWatch(transport: Transport, options: ClientWatchOptions): ClientWatch {
  return resumableWatch(options, restEvents(transport, options.prefix));
}

/** The resume loop shared by both transports (REST above, gRPC in grpc-client.ts). */
export function resumableWatch(options: ClientWatchOptions, open: OpenEvents): ClientWatch {
  const retryForMs = options.retryForMs ?? 30_000;
  const controller = new AbortController();
  let closed = false;
  /** Where the next connection starts, and how many events of that revision were delivered. */
  let from = options.fromRevision;
  let deliveredAtFrom = 0;

  async function* events(): AsyncGenerator<ResourceEvent> {
    let failingSince: number | undefined;
    let backoff = 50;
    const connected = () => {
      failingSince = undefined;
      backoff = 50;
    };
    while (!closed) {
      try {
        let skip = deliveredAtFrom;
        for await (const item of open(from, controller.signal, connected)) {
          if (from !== undefined && item.revision < from) continue;
          if (from !== undefined && item.revision === from && skip > 0) {
            skip--;
            continue;
          }
          if (item.revision !== from) {
            from = item.revision;
            deliveredAtFrom = 0;
          }
          deliveredAtFrom++;
          yield item;
        }
        // The replica ended the stream (shutting down): resume at once.
      } catch (err) {
        if (closed) return;
        if (isTerminal(err)) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > retryForMs) throw err;
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 2_000);
      }
    }
  }

  const iterator = events();
  return {
    [Symbol.asyncIterator]: () => iterator,
    async close() {
      closed = true;
      controller.abort();
      await iterator.return(undefined).catch(() => undefined);
    },
  };
}
