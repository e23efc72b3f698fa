/**
 * HTTPS with mutual TLS to a list of equivalent endpoints (clusterd replicas),
 * tried in order.
 *
 * Failing over is only done when it cannot apply a write twice:
 * - a GET is retried on the next endpoint after any transport failure;
 * - any other call only when its connection failed before a byte of the
 *   request was sent (refused, unreachable, TLS handshake failed, connect
 *   timeout). The TLS connector below marks exactly those errors.
 * An HTTP answer, even a 5xx, is the cluster's answer and is never retried
 * here: every replica serves the same store.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { checkClusterdIdentity } from '../pki/index.ts';
import { ApiError, ClientError, errorFromProblem } from './errors.ts';
import {
  type EndpointFailure,
  FailoverOrder,
  failedAfterSent,
  noEndpointAnswered,
  requireEndpoints,
} from './failover.ts';

export interface TransportOptions {
  /** `https://host:port` of each replica, tried in this order. */
  endpoints: string[];
  /** PEM of the cluster CA: the only issuer trusted for the server's certificate. */
  ca: string;
  /** PEM client certificate and key (admin or node); omitted for the token-authenticated join. */
  cert?: string;
  key?: string;
  /** Per attempt, for the whole exchange. Default 30 s. */
  timeoutMs?: number;
  /** Per attempt, for TCP + TLS. Default the smaller of 5 s and `timeoutMs`. */
  connectTimeoutMs?: number;
}

export type Method = 'GET' | 'POST' | 'DELETE';

export interface RawResponse {
  status: number;
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown;
  requestId: string | undefined;
}

export interface Transport {
  /** The parsed body of a 2xx answer; throws ApiError for a problem, ClientError otherwise. */
  call<T>(method: Method, path: string, body?: unknown): Promise<T>;
  /** Any HTTP answer (for /readyz and /healthz, whose non-2xx is data, not an error). */
  raw(method: Method, path: string): Promise<RawResponse>;
  /**
   * GET a streamed answer from the first endpoint that answers (the preferred
   * one first): the body of a 2xx, unread; a problem answer throws ApiError.
   * `signal` aborts the exchange, body included. Only the wait for the
   * headers is bounded by `timeoutMs`.
   */
  stream(path: string, accept: string, signal: AbortSignal): Promise<Readable>;
  close(): Promise<void>;
}

interface Endpoint {
  origin: string;
  agent: Agent;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Far above any answer of the API (a list of every node or segment). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

function parseEndpoint(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ClientError('UNAVAILABLE', `not a URL: ${JSON.stringify(text)}`, { endpoint: text });
  }
  if (url.protocol !== 'https:') {
    throw new ClientError('UNAVAILABLE', `only https:// endpoints are supported: ${text}`, {
      endpoint: text,
    });
  }
  return url.origin;
}

export function createTransport(options: TransportOptions): Transport {
  return new RestTransport(options);
}

/** One undici Agent per endpoint, connecting with mutual TLS; remembers which errors came before sending. */
function endpointsOf(options: TransportOptions, beforeSend: WeakSet<object>): Endpoint[] {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const tls = buildConnector({
    ca: options.ca,
    ...(options.cert === undefined ? {} : { cert: options.cert }),
    ...(options.key === undefined ? {} : { key: options.key }),
    rejectUnauthorized: true,
    // The chain is the cluster CA's, and the subject must be clusterd's: a
    // node certificate (same CA) at this address is not the control plane.
    checkServerIdentity: checkClusterdIdentity,
    timeout: options.connectTimeoutMs ?? Math.min(5_000, timeoutMs),
  });
  return options.endpoints.map((text) => ({
    origin: parseEndpoint(text),
    agent: new Agent({
      connect: (opts, callback) => {
        tls(opts, (...args) => {
          const [err] = args;
          // Raised while connecting: nothing of the request can have been sent.
          if (err) beforeSend.add(err);
          callback(...args);
        });
      },
    }),
  }));
}

/** Reads a whole answer, refusing a body over MAX_BODY_BYTES. */
async function readAnswer(response: Dispatcher.ResponseData): Promise<RawResponse> {
  const length = Number(response.headers['content-length'] ?? 0);
  if (length > MAX_BODY_BYTES) {
    response.body.destroy();
    throw new ClientError('BAD_RESPONSE', `a ${length}-byte body is over the limit`, {
      status: response.statusCode,
    });
  }
  const text = await response.body.text();
  return {
    status: response.statusCode,
    body: parseBody(text, response.statusCode),
    requestId: requestIdOf(response),
  };
}

function requestIdOf(response: Dispatcher.ResponseData): string | undefined {
  const header = response.headers['x-request-id'];
  return typeof header === 'string' ? header : undefined;
}

/** Methods are bound (arrow properties): callers may take `call` off the transport. */
class RestTransport implements Transport {
  private readonly endpoints: Endpoint[];
  private readonly order: FailoverOrder;
  private readonly timeoutMs: number;
  private readonly beforeSend = new WeakSet<object>();

  constructor(options: TransportOptions) {
    requireEndpoints(options.endpoints);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.endpoints = endpointsOf(options, this.beforeSend);
    this.order = new FailoverOrder(this.endpoints.length);
  }

  call = async <T>(method: Method, path: string, body?: unknown): Promise<T> => {
    const response = await this.exchange(method, path, body, randomUUID());
    if (response.status >= 200 && response.status < 300) return response.body as T;
    throw errorFromProblem(response.status, response.body, response.requestId);
  };

  raw = (method: Method, path: string): Promise<RawResponse> =>
    this.exchange(method, path, undefined, randomUUID());

  stream = async (path: string, accept: string, signal: AbortSignal): Promise<Readable> => {
    const requestId = randomUUID();
    const failures: EndpointFailure[] = [];
    for (const index of this.order.indices()) {
      const endpoint = this.endpoints[index] as Endpoint;
      try {
        return await this.openStream(index, path, accept, signal, requestId);
      } catch (err) {
        if (signal.aborted || !isTransportFailure(err)) throw err;
        failures.push({ endpoint: endpoint.origin, error: describe(err) });
      }
    }
    throw noEndpointAnswered(failures, { method: 'GET', path, requestId, sent: false });
  };

  close = async (): Promise<void> => {
    await Promise.all(this.endpoints.map((e) => e.agent.close()));
  };

  /** Tries each endpoint in turn while failing over cannot apply the call twice. */
  private async exchange(
    method: Method,
    path: string,
    body: unknown,
    requestId: string,
  ): Promise<RawResponse> {
    const failures: EndpointFailure[] = [];
    for (const index of this.order.indices()) {
      const { origin } = this.endpoints[index] as Endpoint;
      try {
        const answer = await this.attempt(index, method, path, body, requestId);
        this.order.answered(index);
        return answer;
      } catch (err) {
        if (err instanceof ClientError) throw err;
        failures.push({ endpoint: origin, error: describe(err) });
        if (!this.mayFailOver(method, err)) {
          const details = { endpoint: origin, method, path, requestId };
          throw failedAfterSent(`${method} ${path}`, origin, describe(err), details, err);
        }
      }
    }
    throw noEndpointAnswered(failures, { method, path, requestId, sent: false });
  }

  /** A GET after any failure; anything else only when its connection failed before sending. */
  private mayFailOver(method: Method, err: unknown): boolean {
    return (
      method === 'GET' || (typeof err === 'object' && err !== null && this.beforeSend.has(err))
    );
  }

  private async attempt(
    index: number,
    method: Method,
    path: string,
    body: unknown,
    requestId: string,
  ): Promise<RawResponse> {
    const endpoint = this.endpoints[index] as Endpoint;
    const headers: Record<string, string> = {
      accept: 'application/json, application/problem+json',
      'x-request-id': requestId,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await endpoint.agent.request({
      origin: endpoint.origin,
      path,
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    return readAnswer(response);
  }

  /** The body of a 2xx answer, unread; a problem answer throws ApiError. */
  private async openStream(
    index: number,
    path: string,
    accept: string,
    signal: AbortSignal,
    requestId: string,
  ): Promise<Readable> {
    const endpoint = this.endpoints[index] as Endpoint;
    const response = await endpoint.agent.request({
      origin: endpoint.origin,
      path,
      method: 'GET',
      headers: { accept: `${accept}, application/problem+json`, 'x-request-id': requestId },
      signal,
      headersTimeout: this.timeoutMs,
      bodyTimeout: 0,
    });
    this.order.answered(index);
    if (response.statusCode >= 200 && response.statusCode < 300) return response.body;
    const text = await response.body.text();
    throw errorFromProblem(
      response.statusCode,
      parseBody(text, response.statusCode),
      requestIdOf(response),
    );
  }
}

function parseBody(text: string, status: number): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // A non-JSON error body (a proxy's HTML page) still yields a useful error below.
    if (status >= 400) return { detail: text.slice(0, 200) };
    throw new ClientError('BAD_RESPONSE', `HTTP ${status} with a body that is not JSON`, {
      status,
    });
  }
}

/** A failure to reach an endpoint (not an answer of the API, nor the client's own error). */
function isTransportFailure(err: unknown): boolean {
  return !(err instanceof ClientError) && !(err instanceof ApiError);
}

function describe(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const { code, message, name } = err as { code?: unknown; message?: unknown; name?: unknown };
  if (name === 'TimeoutError') return 'timed out';
  return typeof code === 'string' ? `${code} ${String(message)}` : String(message ?? name);
}
