/**
 * The gRPC door of the control plane: openapi/amalgam.proto over HTTP/2 with
 * mutual TLS, next to REST, over the same runtime. Also serves
 * grpc.health.v1.Health (SERVING when the store answers) and server
 * reflection (so `grpcurl` works without the .proto).
 *
 * TLS: a client certificate is asked for but not required (a joining machine
 * has none yet); only a chain that verifies against the cluster CA counts
 * (caller.ts). grpc-js's `ServerCredentials.createSsl(ca, pairs, false)` does
 * not even ask for one (requestCert: false), so the credentials come from
 * `experimental.createCertificateProviderServerCredentials` with a static
 * provider: requestCert true, rejectUnauthorized false.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type {
  CaCertificateUpdateListener,
  CertificateProvider,
  IdentityCertificateUpdateListener,
} from '@grpc/grpc-js/build/src/certificate-provider.js';
import { ReflectionService } from '@grpc/reflection';
import { service as healthService } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { ResourceEvent, WatchRequest } from '../../api/contracts.ts';
import { toGrpcError } from '../../api/grpc-error-codec.ts';
import { loadAmalgamProto, SERVICE_NAMES } from '../../api/grpc-proto.ts';
import { AmalgamError } from '../../core/errors.ts';
import { loadRestApi } from '../rest/openapi.ts';
import { type RequestValidators, requestValidatorsFor } from '../rest/request-validators.ts';
import type { ControlPlaneRuntime, ResourceWatch } from '../service/contracts.ts';
import { requireLiveCredential } from '../service/credentials.ts';
import { callerFromCall } from './caller.ts';
import { unaryMethods } from './handlers.ts';
import { GRPC_OPERATIONS } from './operations.ts';

export const MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024;
export const MAX_SEND_MESSAGE_LENGTH = 16 * 1024 * 1024;
/** How often a health Watch re-checks the store. */
const HEALTH_WATCH_INTERVAL_MS = 5_000;

export interface GrpcServerOptions {
  runtime: ControlPlaneRuntime;
  logger: Logger;
  /** PEM: the server's key and certificate chain, and the cluster CA (the only client issuer believed). */
  tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  host: string;
  /** 0 picks a free port. */
  port: number;
}

export interface RunningGrpcServer {
  port: number;
  /** Stops accepting, lets in-flight unary calls finish (then forces after a grace), ends watches. Idempotent. */
  close(): Promise<void>;
}

const CLOSE_GRACE_MS = 5_000;

class StaticCertificateProvider implements CertificateProvider {
  constructor(private readonly tls: GrpcServerOptions['tls']) {}
  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    // Deferred: grpc-js starts watching the credentials only after it added
    // these listeners, and drops an update that comes before.
    queueMicrotask(() => listener({ caCertificate: Buffer.from(this.tls.ca) }));
  }
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    queueMicrotask(() =>
      listener({ certificate: Buffer.from(this.tls.cert), privateKey: Buffer.from(this.tls.key) }),
    );
  }
  removeIdentityCertificateListener(): void {}
}

export function serverCredentials(tls: GrpcServerOptions['tls']): grpc.ServerCredentials {
  const provider = new StaticCertificateProvider(tls);
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** The schema check of one RPC: its OpenAPI operation's, on the message mapped to REST's parts. */
function requestCheck(validators: RequestValidators, path: string) {
  const operation = GRPC_OPERATIONS[path];
  if (!operation) throw new Error(`no OpenAPI operation for gRPC ${path} (grpc/operations.ts)`);
  // Fails at start when the operation is not in the document.
  validators.check(operation.operationId, operation.toRest({}));
  return (request: Record<string, unknown>) =>
    validators.check(operation.operationId, operation.toRest(request));
}

function unaryHandler(
  options: GrpcServerOptions,
  validators: RequestValidators,
  service: string,
  name: string,
): grpc.handleUnaryCall<Record<string, unknown>, unknown> {
  const method = unaryMethods[service]?.[name];
  if (!method) throw new Error(`no handler for ${service}/${name}`);
  const { runtime, logger } = options;
  const path = `${service}/${name}`;
  const check = requestCheck(validators, path);
  return (call, callback) => {
    const caller = callerFromCall(call);
    // The service's result is dropped when the client went away (cancelled or
    // past its deadline): grpc-js has already answered for it.
    const answer: grpc.sendUnaryData<unknown> = (err, value) => {
      if (call.cancelled) return;
      callback(err, value);
    };
    if (caller.kind === 'anonymous' && !method.anonymous) {
      answer(toGrpcError(new AmalgamError('UNAUTHENTICATED'), logger, path));
      return;
    }
    try {
      if (!method.anonymous) requireLiveCredential(runtime.users, caller);
    } catch (err) {
      logger.info({ method: path, caller, err }, 'gRPC call refused');
      answer(toGrpcError(err, logger, path));
      return;
    }
    const invalid = check(call.request);
    if (invalid) {
      logger.debug({ method: path, caller, detail: invalid.message }, 'gRPC call refused');
      answer(toGrpcError(invalid, logger, path));
      return;
    }
    method.handle(runtime, caller, call.request).then(
      (value) => answer(null, value),
      (err) => {
        logger.debug({ err, method: path, caller }, 'gRPC call refused');
        answer(toGrpcError(err, logger, path));
      },
    );
  };
}

function toEvent(event: ResourceEvent) {
  return {
    type: event.type,
    key: event.key,
    valueJson: event.value === null || event.value === undefined ? '' : JSON.stringify(event.value),
    revision: event.revision,
  };
}

function watchHandler(
  options: GrpcServerOptions,
  open: Set<ResourceWatch>,
): grpc.handleServerStreamingCall<Record<string, unknown>, unknown> {
  const { runtime, logger } = options;
  const path = 'Watch/Watch';
  return async (call) => {
    const fail = (err: unknown) => {
      if (!call.cancelled) call.emit('error', toGrpcError(err, logger, path));
    };
    const caller = callerFromCall(call);
    if (caller.kind === 'anonymous') return fail(new AmalgamError('UNAUTHENTICATED'));
    try {
      requireLiveCredential(runtime.users, caller);
    } catch (err) {
      return fail(err);
    }
    const request: WatchRequest = { prefix: String(call.request.prefix ?? '') };
    const from = call.request.fromRevision;
    if (typeof from === 'number') request.fromRevision = from;

    let watch: ResourceWatch;
    try {
      watch = runtime.watch.open(caller, request);
    } catch (err) {
      return fail(err);
    }
    open.add(watch);
    let stopped = false;
    const stop = () => {
      stopped = true;
      watch.close().catch((err) => logger.warn({ err }, 'closing a watch failed'));
    };
    call.once('cancelled', stop);
    // grpc-js answers DEADLINE_EXCEEDED by itself; the store watch must end then too.
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() - Date.now() : Number(deadline);
    const timer = Number.isFinite(ms) ? setTimeout(stop, Math.max(0, ms)) : undefined;
    try {
      for await (const event of watch) {
        if (stopped || call.cancelled) break;
        if (!call.write(toEvent(event))) {
          await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
        }
      }
      if (!call.cancelled && !stopped) call.end();
    } catch (err) {
      fail(err);
    } finally {
      clearTimeout(timer);
      open.delete(watch);
      if (!stopped) stop();
    }
  };
}

function healthHandlers(runtime: ControlPlaneRuntime) {
  const known = new Set<string>(['', ...SERVICE_NAMES]);
  const statusOf = async (service: string) => {
    if (!known.has(service)) return undefined;
    return (await runtime.ready().catch(() => false)) ? 'SERVING' : 'NOT_SERVING';
  };
  return {
    Check: (
      call: grpc.ServerUnaryCall<{ service?: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const service = call.request.service ?? '';
      statusOf(service).then((status) => {
        if (status) callback(null, { status });
        else callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${service}` });
      });
    },
    Watch: (call: grpc.ServerWritableStream<{ service?: string }, unknown>) => {
      const service = call.request.service ?? '';
      let last: string | undefined;
      const tick = () =>
        statusOf(service).then((status) => {
          const current = status ?? 'SERVICE_UNKNOWN';
          if (current !== last && !call.cancelled) {
            last = current;
            call.write({ status: current });
          }
        });
      void tick();
      const timer = setInterval(tick, HEALTH_WATCH_INTERVAL_MS);
      call.once('cancelled', () => clearInterval(timer));
    },
  };
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_LENGTH,
    'grpc.max_send_message_length': MAX_SEND_MESSAGE_LENGTH,
  });
  const definition = loadAmalgamProto();
  const watches = new Set<ResourceWatch>();
  const validators = requestValidatorsFor(loadRestApi());
  for (const [service, methods] of Object.entries(unaryMethods)) {
    const serviceDefinition = definition[`amalgam.v1.${service}`] as grpc.ServiceDefinition;
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const name of Object.keys(methods)) {
      implementation[name] = unaryHandler(
        options,
        validators,
        service,
        name,
      ) as grpc.UntypedHandleCall;
    }
    server.addService(serviceDefinition, implementation);
  }
  server.addService(definition['amalgam.v1.Watch'] as grpc.ServiceDefinition, {
    Watch: watchHandler(options, watches) as grpc.UntypedHandleCall,
  });
  server.addService(
    healthService as unknown as grpc.ServiceDefinition,
    healthHandlers(options.runtime) as unknown as grpc.UntypedServiceImplementation,
  );
  new ReflectionService(definition).addToServer(server);

  const address = options.host.includes(':') ? `[${options.host}]` : options.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${address}:${options.port}`, serverCredentials(options.tls), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );

  let closing: Promise<void> | undefined;
  return {
    port,
    close: () => {
      closing ??= (async () => {
        await Promise.all([...watches].map((w) => w.close().catch(() => {})));
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, CLOSE_GRACE_MS);
          force.unref();
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      })();
      return closing;
    },
  };
}
