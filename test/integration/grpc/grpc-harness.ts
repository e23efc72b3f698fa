/**
 * The gRPC server over the real service layer on an embedded store in a temp
 * directory, on 127.0.0.1:0 with real certificates from the PKI library (a
 * CA, a server certificate for 127.0.0.1, the admin credential; node
 * certificates come from Join). `client(...)` makes a promise-returning
 * client per service for one identity.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { pino } from 'pino';
import type { Test } from 'tap';
import { amalgamCodeOf } from '../../../services/api/grpc-error-codec.ts';
import { LOADER_OPTIONS, loadAmalgamProto } from '../../../services/api/grpc-proto.ts';
import { createControlPlane } from '../../../services/controlplane/control-plane.ts';
import { startGrpcServer } from '../../../services/controlplane/grpc/server.ts';
import type { ControlPlaneRuntime } from '../../../services/controlplane/service/contracts.ts';
import {
  type ClusterCa,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../../services/pki/index.ts';
import { openEmbeddedStore } from '../../../services/store/embedded-store.ts';
import type { Store } from '../../../services/store/store.ts';

export const logger = pino({ level: 'silent' });

export interface Pki {
  ca: ClusterCa;
  server: { certPem: string; keyPem: string };
  admin: { certPem: string; keyPem: string };
}

export async function makePki(): Promise<Pki> {
  const ca = await createClusterCa({ commonName: 'amalgam-grpc-test-ca' });
  const server = await createKeyAndCsr({ commonName: 'clusterd', ipAddresses: ['127.0.0.1'] });
  const certPem = await signCsr(ca, server.csrPem, {
    commonName: 'clusterd',
    organization: 'amalgam:control-plane',
    ipAddresses: ['127.0.0.1'],
    usages: ['server', 'client'],
    validityDays: 1,
  });
  return { ca, server: { certPem, keyPem: server.keyPem }, admin: await issueAdminCredential(ca) };
}

/** A client identity: a key and certificate, or none (anonymous). */
export type Identity = { keyPem: string; certPem: string } | undefined;

export type Rpc = (
  method: string,
  request?: Record<string, unknown>,
  options?: grpc.CallOptions,
) => Promise<unknown>;

/** A client made from a service definition: its methods are looked up by name. */
// biome-ignore lint/suspicious/noExplicitAny: generic clients are untyped by construction
export type GenericClient = grpc.Client & { [method: string]: any };

export interface GrpcHarness {
  runtime: ControlPlaneRuntime;
  store: Store;
  pki: Pki;
  port: number;
  /** A generic client of `amalgam.v1.<service>` (or a full service name) as `identity`. */
  rawClient(service: string, identity: Identity): GenericClient;
  /** Promise-returning unary calls of `service` as `identity`. */
  rpc(service: string, identity: Identity): Rpc;
}

const require = createRequire(import.meta.url);
const definition: Record<string, unknown> = {
  ...loadAmalgamProto(),
  'grpc.health.v1.Health': healthService,
  ...protoLoader.loadSync(
    require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'),
    LOADER_OPTIONS,
  ),
};

export async function startGrpcHarness(t: Test, pki?: Pki): Promise<GrpcHarness> {
  const material = pki ?? (await makePki());
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-grpc-'));
  const store = await openEmbeddedStore({ dataDir: dir });
  const runtime = await createControlPlane({
    store,
    singleMachine: true, // every node of this test is on loopback
    ca: material.ca,
    clusterName: 'rest-test',
    logger,
    controllers: false,
  });
  const server = await startGrpcServer({
    runtime,
    logger,
    tls: { key: material.server.keyPem, cert: material.server.certPem, ca: material.ca.certPem },
    host: '127.0.0.1',
    port: 0,
  });
  const clients: grpc.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.close();
    await runtime.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const rawClient = (service: string, identity: Identity): GenericClient => {
    const name = service.includes('.') ? service : `amalgam.v1.${service}`;
    const Ctor = grpc.makeGenericClientConstructor(
      definition[name] as grpc.ServiceDefinition,
      name,
    );
    const creds = grpc.credentials.createSsl(
      Buffer.from(material.ca.certPem),
      identity ? Buffer.from(identity.keyPem) : null,
      identity ? Buffer.from(identity.certPem) : null,
    );
    const client: GenericClient = new Ctor(`127.0.0.1:${server.port}`, creds);
    clients.push(client);
    return client;
  };
  return {
    runtime,
    store,
    pki: material,
    port: server.port,
    rawClient,
    rpc(service, identity) {
      const client = rawClient(service, identity);
      return (method, request = {}, options = {}) =>
        new Promise((resolve, reject) =>
          client[method](request, new grpc.Metadata(), options, (err: unknown, value: unknown) =>
            err ? reject(err) : resolve(value),
          ),
        );
    },
  };
}

/** The catalogue code of a failed call (`amalgam-code` trailer), or a description of what came instead. */
export function codeOf(err: unknown): string {
  const e = err as grpc.ServiceError;
  return amalgamCodeOf(e?.metadata) ?? `no amalgam-code (status ${e?.code}: ${e?.details})`;
}
