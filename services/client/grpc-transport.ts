/**
 * gRPC (openapi/amalgam.proto) with mutual TLS to a list of equivalent
 * endpoints (clusterd replicas, `host:port`), one channel each, tried from
 * the one that answered last.
 *
 * Failing over, as on REST, only where it cannot apply a write twice:
 * - a read (`kind: 'read'`) is asked of the next endpoint after any failure
 *   that is not an answer (UNAVAILABLE, DEADLINE_EXCEEDED, a reset stream);
 * - a write only when grpc-js failed it with "No connection established":
 *   its channel had no connection, so the call was never handed to a
 *   transport (grpc-errors.ts). A write that fails in any other way (the
 *   replica died with the call on the wire, its deadline passed) is a
 *   `ClientError` UNAVAILABLE with `details.sent: true`: it may or may not
 *   have been applied, the caller decides.
 * An answer carrying `amalgam-code` (even NO_QUORUM) is the cluster's answer
 * and is never failed over.
 */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { loadAmalgamProto } from '../api/grpc-proto.ts';
import { checkClusterdIdentity } from '../pki/index.ts';
import { ClientError } from './errors.ts';
import {
  type EndpointFailure,
  FailoverOrder,
  failedAfterSent,
  noEndpointAnswered,
  requireEndpoints,
} from './failover.ts';
import { classifyGrpcFailure, type GrpcFailure } from './grpc-errors.ts';

export interface GrpcTransportOptions {
  /** `host:port` of each replica's gRPC listener, tried in this order. */
  endpoints: string[];
  /** PEM of the cluster CA: the only issuer trusted for the server's certificate. */
  ca: string;
  /** PEM client certificate and key (admin or node); omitted for the token-authenticated join. */
  cert?: string;
  key?: string;
  /** Per attempt: the call's deadline. Default 30 s. */
  timeoutMs?: number;
  /** Per attempt, for a watch: how long to wait for a connection. Default the smaller of 5 s and `timeoutMs`. */
  connectTimeoutMs?: number;
}

export type CallKind = 'read' | 'write';

export interface GrpcTransport {
  /** `service` is `amalgam.v1.Nodes` etc., or `grpc.health.v1.Health`. */
  unary<T>(service: string, method: string, request: object, kind: CallKind): Promise<T>;
  /**
   * A server stream from the preferred endpoint, once its channel is
   * connected; a failure without an answer moves the preference to the next
   * endpoint, so the caller's retry goes there. `signal` cancels the call;
   * `connected` is called once the channel is connected.
   */
  serverStream<T>(
    service: string,
    method: string,
    request: object,
    signal: AbortSignal,
    connected?: () => void,
  ): AsyncGenerator<T>;
  close(): Promise<void>;
}

interface MethodDefinition {
  path: string;
  requestSerialize: (value: object) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_RECEIVE_MESSAGE_LENGTH = 64 * 1024 * 1024;

let definitions: Record<string, unknown> | undefined;
function methodOf(service: string, method: string): MethodDefinition {
  definitions ??= {
    ...loadAmalgamProto(),
    'grpc.health.v1.Health': healthService,
  };
  const found = (definitions[service] as Record<string, MethodDefinition> | undefined)?.[method];
  if (!found) throw new Error(`no gRPC method ${service}/${method}`);
  return found;
}

function parseEndpoint(text: string): string {
  const match = /^(?:grpcs?:\/\/)?(\[[^\]]+\]|[^:/\s]+):(\d{1,5})$/.exec(text);
  if (!match) {
    throw new ClientError('UNAVAILABLE', `not a host:port endpoint: ${JSON.stringify(text)}`, {
      endpoint: text,
    });
  }
  return `${match[1]}:${match[2]}`;
}

export function createGrpcTransport(options: GrpcTransportOptions): GrpcTransport {
  return new GrpcChannels(options);
}

interface Channel {
  address: string;
  client: grpc.Client;
}

function channelsOf(options: GrpcTransportOptions): Channel[] {
  const credentials = grpc.credentials.createSsl(
    Buffer.from(options.ca),
    options.key === undefined ? null : Buffer.from(options.key),
    options.cert === undefined ? null : Buffer.from(options.cert),
    // The host name AND clusterd's subject (pki/server-identity.ts).
    { checkServerIdentity: checkClusterdIdentity },
  );
  return options.endpoints.map((text) => {
    const address = parseEndpoint(text);
    return {
      address,
      client: new grpc.Client(address, credentials, {
        'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_LENGTH,
        // Failover is ours: a dead replica must fail fast, not be retried by grpc-js.
        'grpc.enable_retries': 0,
      }),
    };
  });
}

function unaryCall<T>(
  client: grpc.Client,
  def: MethodDefinition,
  request: object,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize as (bytes: Buffer) => T,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, value) => (err ? reject(err) : resolve(value as T)),
    );
  });
}

function waitForReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
  );
}

/** One channel per endpoint; the methods of GrpcTransport over them. */
class GrpcChannels implements GrpcTransport {
  private readonly channels: Channel[];
  private readonly order: FailoverOrder;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private closed = false;

  constructor(options: GrpcTransportOptions) {
    requireEndpoints(options.endpoints);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? Math.min(5_000, this.timeoutMs);
    this.channels = channelsOf(options);
    this.order = new FailoverOrder(this.channels.length);
  }

  async unary<T>(service: string, method: string, request: object, kind: CallKind): Promise<T> {
    this.refuseWhenClosed();
    const def = methodOf(service, method);
    const failures: EndpointFailure[] = [];
    for (const index of this.order.indices()) {
      const { client, address: endpoint } = this.channels[index] as Channel;
      try {
        const value = await unaryCall<T>(client, def, request, this.timeoutMs);
        this.order.answered(index);
        return value;
      } catch (err) {
        const context = { endpoint, method: `${service}/${method}` };
        const failure = classifyGrpcFailure(err as GrpcFailure, context);
        if (!failure.transportFailure) {
          this.order.answered(index);
          throw failure.error;
        }
        failures.push({ endpoint, error: failure.error.message });
        if (kind === 'write' && !failure.notSent) {
          const operation = `${service}/${method}`;
          throw failedAfterSent(operation, endpoint, failure.error.message, context, err);
        }
      }
    }
    throw noEndpointAnswered(failures, {
      method: `${service}/${method}`,
      sent: kind === 'read' ? undefined : false,
    });
  }

  async *serverStream<T>(
    service: string,
    method: string,
    request: object,
    signal: AbortSignal,
    connected?: () => void,
  ): AsyncGenerator<T> {
    this.refuseWhenClosed();
    const def = methodOf(service, method);
    const index = this.order.current();
    const { client, address } = this.channels[index] as Channel;
    try {
      await waitForReady(client, this.connectTimeoutMs);
    } catch (err) {
      this.order.passOver(index);
      throw new ClientError('UNAVAILABLE', `${address}: ${(err as Error).message}`, {
        endpoint: address,
        sent: false,
      });
    }
    if (signal.aborted) return;
    connected?.();
    const call = client.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize as (bytes: Buffer) => T,
      request,
      new grpc.Metadata(),
      {},
    );
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      for await (const message of call as AsyncIterable<T>) yield message;
    } catch (err) {
      if (signal.aborted) return;
      const failure = classifyGrpcFailure(err as GrpcFailure, {
        endpoint: address,
        method: `${service}/${method}`,
      });
      if (failure.transportFailure) this.order.passOver(index);
      throw failure.error;
    } finally {
      signal.removeEventListener('abort', cancel);
      call.cancel();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.channels) c.client.close();
  }

  private refuseWhenClosed(): void {
    if (this.closed) throw new ClientError('UNAVAILABLE', 'the client was closed');
  }
}
