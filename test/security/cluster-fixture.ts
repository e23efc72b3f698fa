/**
 * A real clusterd (in-process, HTTPS + gRPC on 127.0.0.1, embedded store)
 * whose logs are kept as lines, and real client certificates: the admin
 * credential, users made through POST /v1/users, nodes joined through
 * POST /v1/join. Calls go over real mutual TLS, so the Caller comes from the
 * certificate exactly as in production.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Test } from 'tap';
import { amalgamCodeOf } from '../../services/api/grpc-error-codec.ts';
import { loadAmalgamProto } from '../../services/api/grpc-proto.ts';
import { startClusterd } from '../../services/controlplane/server.ts';
import {
  type ClusterCa,
  clusterdSubject,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';

export interface Credential {
  certPem: string;
  keyPem: string;
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

export interface ClusterFixture {
  ca: ClusterCa;
  /** https://127.0.0.1:port */
  url: string;
  /** 127.0.0.1:port of the gRPC listener. */
  grpcAddress: string;
  admin: Credential;
  /** The log lines clusterd wrote, parsed. */
  logs: Record<string, unknown>[];
  call(who: Credential | undefined, method: string, path: string, body?: unknown): Promise<Answer>;
  /** A unary gRPC call; resolves to the answer or to `{ grpcStatus, code }`. */
  rpc(
    who: Credential,
    service: string,
    method: string,
    body: Record<string, unknown>,
  ): Promise<unknown>;
  createUser(name: string, role: 'admin' | 'operator' | 'viewer'): Promise<Credential>;
  join(name: string): Promise<Credential>;
}

const MiB = 1024 ** 2;

export async function startCluster(t: Test): Promise<ClusterFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-security-'));
  const ca = await createClusterCa();
  const server = await createKeyAndCsr({ commonName: 'clusterd' });
  const serverCert = await signCsr(ca, server.csrPem, {
    ...clusterdSubject(),
    ipAddresses: ['127.0.0.1'],
    usages: ['server'],
    validityDays: 1,
  });
  const files = {
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
  };
  await writeFile(files.certFile, serverCert);
  await writeFile(files.keyFile, server.keyPem, { mode: 0o600 });
  await writeFile(files.caFile, ca.certPem);
  await writeFile(files.caKeyFile, ca.keyPem, { mode: 0o600 });
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const clusterd = await startClusterd(
    {
      clusterName: 'security',
      listen: { host: '127.0.0.1', port: 0 },
      grpcListen: { host: '127.0.0.1', port: 0 },
      tls: files,
      store: { backend: 'embedded', dataDir: join(dir, 'data') },
    },
    logger,
  );
  const clients: grpc.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await clusterd.close();
    await rm(dir, { recursive: true, force: true });
  });
  const admin = await issueAdminCredential(ca);
  const base = new URL(clusterd.url);

  const call: ClusterFixture['call'] = (who, method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: base.hostname,
          port: base.port,
          method,
          path,
          ca: ca.certPem,
          ...(who ? { cert: who.certPem, key: who.keyPem } : {}),
          agent: false,
          headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        },
        (res) => {
          // A watch answers 200 and streams: its status is all a walk needs.
          if (res.headers['content-type']?.startsWith('application/x-ndjson')) {
            resolve({ status: res.statusCode ?? 0, body: {} });
            req.destroy();
            return;
          }
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown> = {};
            try {
              parsed =
                text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : {};
            } catch {
              parsed = {};
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  const proto = loadAmalgamProto();
  const rpc: ClusterFixture['rpc'] = (who, service, method, body) => {
    const name = `amalgam.v1.${service}`;
    const Ctor = grpc.makeGenericClientConstructor(proto[name] as grpc.ServiceDefinition, name);
    const creds = grpc.credentials.createSsl(
      Buffer.from(ca.certPem),
      Buffer.from(who.keyPem),
      Buffer.from(who.certPem),
    );
    type Unary = (
      body: unknown,
      done: (err: grpc.ServiceError | null, value: unknown) => void,
    ) => void;
    const client = new Ctor(clusterd.grpcAddress as string, creds) as unknown as grpc.Client &
      Record<string, Unary>;
    clients.push(client);
    return new Promise((resolve) => {
      (client[method] as Unary).call(client, body, (err, value) =>
        resolve(err ? { grpcStatus: err.code, code: amalgamCodeOf(err.metadata) } : value),
      );
    });
  };

  return {
    ca,
    url: clusterd.url,
    grpcAddress: clusterd.grpcAddress as string,
    admin,
    logs,
    call,
    rpc,
    async createUser(name, role) {
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName: name });
      const res = await call(admin, 'POST', '/v1/users', { name, role, csr: csrPem });
      if (res.status !== 201) throw new Error(`create user ${name}: ${JSON.stringify(res.body)}`);
      return { keyPem, certPem: String(res.body.certificate) };
    },
    async join(name) {
      const token = await call(admin, 'POST', '/v1/tokens', {});
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName: name });
      const res = await call(undefined, 'POST', '/v1/join', {
        token: token.body.token,
        name,
        csr: csrPem,
        capacity: {
          memoryBytes: 64 * MiB,
          swapBytes: 0,
          contributedBytes: 64 * MiB,
          cpus: 2,
          cpuSpeed: 1000,
        },
      });
      if (res.status !== 201) throw new Error(`join ${name}: ${JSON.stringify(res.body)}`);
      return { keyPem, certPem: String(res.body.certificate) };
    },
  };
}

export const LOAD = { load1: 0.1, load5: 0.1, load15: 0.1, memoryUsedBytes: MiB, processes: 1 };

/** The log lines that refused a request with `code`, whose detail matches `detail`. */
export function refusals(logs: Record<string, unknown>[], code: string, detail: RegExp) {
  return logs.filter((l) => l.code === code && detail.test(String(l.detail ?? '')));
}
