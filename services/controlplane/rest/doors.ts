/**
 * The REST door's own limits (clusterd config `limits`, limits.ts), applied
 * before any route runs, so that a client without a credential holds nothing
 * for long:
 *
 * - `connectionTimeoutMs`: a socket silent this long is closed (an open watch
 *   stream turns it off for its socket: the watch caps bound those);
 * - `headersTimeoutMs` / `requestTimeoutMs`: the request's headers, and the
 *   whole request with its body, must arrive in time, else a 408 problem
 *   document (REQUEST_TIMEOUT) and the socket is closed. Node checks every
 *   `CHECK_INTERVAL_MS`, so a stalled request lasts at most that much longer;
 * - `keepAliveTimeoutMs`: an idle keep-alive connection is closed;
 * - `maxConnections`: connections beyond it are closed at accept, before TLS;
 * - `bodyLimit`: per operation; 1 KiB for operations that take no body.
 * Refusals are logged (connection drops at most once a second, with a count)
 * and counted in `amalgam_http_connections_refused_total{reason}`.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { AmalgamError } from '../../core/errors.ts';
import type { LimitsConfig } from '../limits.ts';
import type { Operation } from './openapi.ts';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE } from './problem.ts';

/** How often Node looks for requests past their headers or request timeout. */
export const CHECK_INTERVAL_MS = 1_000;
/** Body limit of an operation that takes no body (`{}` or nothing is all it accepts). */
export const NO_BODY_LIMIT = 1024;
const DROP_LOG_INTERVAL_MS = 1_000;

function refusedCounter(registry: Registry): Counter<'reason'> {
  const name = 'amalgam_http_connections_refused_total';
  return (
    (registry.getSingleMetric(name) as Counter<'reason'> | undefined) ??
    new Counter({
      name,
      help: 'REST connections closed by a limit: max_connections at accept, request_timeout, client_error.',
      labelNames: ['reason'] as const,
      registers: [registry],
    })
  );
}

/** The options of Node's server (https.createServer) that fastify does not set itself. */
export function serverOptions(limits: LimitsConfig) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    // TCP keep-alive finds peers that vanished under a long-lived watch.
    keepAlive: true,
    keepAliveInitialDelay: 30_000,
  };
}

/** A problem document written straight to a socket (no request object exists yet). */
function rawProblem(status: number, reason: string, error: AmalgamError): string {
  const body = JSON.stringify({
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: error.message,
    status,
    code: error.code,
    detail: error.message,
    requestId: randomUUID(),
  });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** fastify's options for the door: timeouts, the body limit, and client errors as problems. */
export function fastifyLimitOptions(limits: LimitsConfig, logger: Logger, registry: Registry) {
  const refused = refusedCounter(registry);
  return {
    connectionTimeout: limits.connectionTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    bodyLimit: limits.bodyLimit,
    clientErrorHandler: (err: Error & { code?: string }, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const remote = (socket as Duplex & { remoteAddress?: string }).remoteAddress;
      let answer: string;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        refused.inc({ reason: 'request_timeout' });
        const error = new AmalgamError('REQUEST_TIMEOUT', `${limits.requestTimeoutMs} ms`);
        logger.info({ code: error.code, remote }, 'request refused: it did not arrive in time');
        answer = rawProblem(408, 'Request Timeout', error);
      } else {
        refused.inc({ reason: 'client_error' });
        const error = new AmalgamError('INVALID_ARGUMENT', 'malformed HTTP request', {
          field: 'request',
        });
        logger.debug({ code: error.code, remote, err: err.code }, 'malformed HTTP request');
        answer = rawProblem(400, 'Bad Request', error);
      }
      if (socket.writable) socket.end(answer);
      socket.destroy();
    },
  };
}

/** Connections beyond `max` are closed at accept; logged at most once a second. */
export function capConnections(
  server: Server,
  max: number,
  logger: Logger,
  registry: Registry,
): void {
  const refused = refusedCounter(registry);
  server.maxConnections = max;
  let dropped = 0;
  let lastLog = 0;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    refused.inc({ reason: 'max_connections' });
    dropped += 1;
    const now = Date.now();
    if (now - lastLog < DROP_LOG_INTERVAL_MS) return;
    lastLog = now;
    logger.warn(
      { limit: 'maxConnections', max, dropped, remote: data?.remoteAddress },
      'connection refused: limits.maxConnections reached',
    );
    dropped = 0;
  });
}

/** The largest body an operation accepts. */
export function bodyLimitOf(op: Operation, limits: LimitsConfig): number {
  return op.body ? limits.bodyLimit : Math.min(NO_BODY_LIMIT, limits.bodyLimit);
}
